-- Accounts whose decision on D includes the credit report, with what the bureau record shows:
-- the overdue part of the balance and the oldest overdue due date.
SELECT d.account_id, a.holder_name, a.service_address, a.customer_class, d.dpd,
       d.outstanding_fen, d.late_fee_fen, d.holds,
       COALESCE(SUM(CASE WHEN s.due_date < d.cycle_date THEN s.open_fen ELSE 0 END), 0),
       MIN(CASE WHEN s.due_date < d.cycle_date THEN s.due_date END)
FROM {decisions} d
JOIN extract_accounts a ON a.cycle_date = d.cycle_date AND a.account_id = d.account_id
LEFT JOIN staged_bills s ON s.cycle_date = d.cycle_date AND s.account_id = d.account_id AND s.open_fen > 0
WHERE d.cycle_date = :d
  AND EXISTS (SELECT 1 FROM {decision_actions} x
              WHERE x.cycle_date = d.cycle_date AND x.account_id = d.account_id
                AND x.action = 'credit_report')
GROUP BY d.account_id, a.holder_name, a.service_address, a.customer_class, d.dpd,
         d.outstanding_fen, d.late_fee_fen, d.holds
ORDER BY d.account_id COLLATE BINARY;
