SELECT account_id, bill_id, bill_period, due_date, open_fen
FROM staged_bills WHERE cycle_date = :d ORDER BY account_id COLLATE BINARY, due_date, bill_id;
