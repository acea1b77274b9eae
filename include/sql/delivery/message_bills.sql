-- The open bills behind D's messages, oldest first, with each bill's late fee as decided on D.
SELECT s.account_id, s.bill_period, s.due_date, s.open_fen,
       COALESCE(b.days_overdue, 0), COALESCE(b.late_fee_fen, 0)
FROM staged_bills s
JOIN decisions d ON d.cycle_date = s.cycle_date AND d.account_id = s.account_id
LEFT JOIN decision_bills b ON b.cycle_date = s.cycle_date AND b.bill_id = s.bill_id
WHERE s.cycle_date = :d AND s.open_fen > 0 AND d.message_kinds <> ''
ORDER BY s.account_id COLLATE BINARY, s.due_date, s.bill_id COLLATE BINARY;
