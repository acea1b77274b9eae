-- Accounts reported to the bureau before D (normal runs) and paid in full on D (gone from D's
-- extract or nothing outstanding), with no paid record written after that report on an earlier
-- day (a re-run of D writes D's again). The caller keeps those last reported in an earlier month.
SELECT r.account_id, r.last_reported
FROM (SELECT x.account_id, MAX(x.cycle_date) AS last_reported
      FROM decision_actions x JOIN decisions c
        ON c.cycle_date = x.cycle_date AND c.account_id = x.account_id
      WHERE x.action = 'credit_report' AND c.replay = 0 AND x.cycle_date < :d
      GROUP BY x.account_id) r
LEFT JOIN {decisions} t ON t.cycle_date = :d AND t.account_id = r.account_id
WHERE (t.account_id IS NULL OR t.outstanding_fen = 0)
  AND EXISTS (SELECT 1 FROM deliveries WHERE cycle_date = :d)
  AND NOT EXISTS (SELECT 1 FROM bureau_paid_reports p WHERE p.account_id = r.account_id
                  AND p.cycle_date > r.last_reported AND p.cycle_date < :d)
ORDER BY r.account_id COLLATE BINARY;
