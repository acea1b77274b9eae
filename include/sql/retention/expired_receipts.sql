-- Receipts and replies received on or before the cut-off whose address or text is still held.
SELECT receipt_id, account_id, address, detail FROM channel_receipts
WHERE received_on <= :cutoff
  AND ((address <> '' AND address NOT LIKE 'sha256:%') OR (detail <> '' AND detail NOT LIKE 'sha256:%'))
ORDER BY receipt_id COLLATE BINARY;
