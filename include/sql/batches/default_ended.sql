-- Accounts with the credit report on D whose default has ended since D (a replay of a past
-- date): the first later extract without them. Empty on a normal run (no later extract).
SELECT d.account_id, MIN(x.cycle_date)
FROM {decisions} d
JOIN deliveries x ON x.cycle_date > d.cycle_date
WHERE d.cycle_date = :d
  AND EXISTS (SELECT 1 FROM {decision_actions} x
              WHERE x.cycle_date = d.cycle_date AND x.account_id = d.account_id
                AND x.action = 'credit_report')
  AND NOT EXISTS (SELECT 1 FROM extract_accounts e
                  WHERE e.cycle_date = x.cycle_date AND e.account_id = d.account_id)
GROUP BY d.account_id;
