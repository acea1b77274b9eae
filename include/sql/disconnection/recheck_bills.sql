SELECT bill_id, bill_period, due_date, open_fen
FROM staged_bills WHERE cycle_date = :s AND account_id = :a ORDER BY due_date, bill_id;
