-- Payment-plan events known as of D of the accounts of D's extract that have an instalment plan
-- (what the agents' lists show as plan status; arrears.policy.plans decides it).
SELECT e.account_id, e.event_id, e.event_type, e.effective_date, e.amount_fen, e.until_date,
       e.note, e.instalments
FROM case_events e JOIN extract_accounts a ON a.account_id = e.account_id AND a.cycle_date = :d
WHERE e.first_seen <= :d AND e.event_type IN ('payment_plan', 'plan_broken')
  AND EXISTS (SELECT 1 FROM case_events p WHERE p.account_id = e.account_id
              AND p.event_type = 'payment_plan' AND p.instalments <> '' AND p.first_seen <= :d)
ORDER BY e.account_id COLLATE BINARY, e.effective_date, e.event_id;
