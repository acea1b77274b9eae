UPDATE channel_receipts SET address = :address, detail = :detail WHERE receipt_id = :receipt_id;
