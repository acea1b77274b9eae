SELECT account_id, bill_id, bill_period, due_date, open_fen
FROM staged_bills
WHERE cycle_date = :d AND account_id >= :lo COLLATE BINARY
  AND (CAST(:hi AS TEXT) IS NULL OR account_id < :hi COLLATE BINARY)
ORDER BY account_id COLLATE BINARY, due_date, bill_id;
