-- The open bills behind each lawyer letter of D, with the days and late fee the decision used.
SELECT s.account_id, s.bill_period, s.open_fen, s.due_date,
       COALESCE(b.days_overdue, 0), COALESCE(b.late_fee_fen, 0)
FROM staged_bills s
JOIN {decisions} d ON d.cycle_date = s.cycle_date AND d.account_id = s.account_id
LEFT JOIN {decision_bills} b ON b.cycle_date = s.cycle_date AND b.bill_id = s.bill_id
WHERE s.cycle_date = :d AND s.open_fen > 0
  AND EXISTS (SELECT 1 FROM {decision_actions} x
              WHERE x.cycle_date = d.cycle_date AND x.account_id = d.account_id
                AND x.action = 'lawyer_letter')
ORDER BY s.account_id COLLATE BINARY, s.due_date, s.bill_id;
