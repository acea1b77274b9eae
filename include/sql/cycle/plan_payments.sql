-- Payments known as of D (paid before D) of the accounts of D's extract that have an instalment
-- plan, which the plan monitor matches with the instalments (arrears.policy.plans).
SELECT p.account_id, p.paid_on, p.amount_fen
FROM payments p JOIN extract_accounts a ON a.account_id = p.account_id AND a.cycle_date = :d
WHERE p.first_seen <= :d AND p.paid_on < :d
  AND EXISTS (SELECT 1 FROM case_events e WHERE e.account_id = p.account_id
              AND e.event_type = 'payment_plan' AND e.instalments <> '' AND e.first_seen <= :d)
  AND a.account_id >= :lo COLLATE BINARY
  AND (CAST(:hi AS TEXT) IS NULL OR a.account_id < :hi COLLATE BINARY)
ORDER BY p.account_id COLLATE BINARY, p.paid_on, p.payment_id;
