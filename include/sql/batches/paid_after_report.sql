-- Accounts reported to the bureau before D (normal runs) and paid in full on D (gone from D's
-- extract or nothing outstanding), with no paid record written after that report on an earlier
-- day (a re-run of D writes D's again). The caller keeps those last reported in an earlier month.
SELECT r.account_id, r.last_reported
FROM (SELECT account_id, MAX(cycle_date) AS last_reported FROM decisions
      WHERE replay = 0 AND cycle_date < :d AND actions LIKE '%credit_report%'
      GROUP BY account_id) r
LEFT JOIN decisions t ON t.cycle_date = :d AND t.account_id = r.account_id
WHERE (t.account_id IS NULL OR t.outstanding_fen = 0)
  AND EXISTS (SELECT 1 FROM deliveries WHERE cycle_date = :d)
  AND NOT EXISTS (SELECT 1 FROM bureau_paid_reports p WHERE p.account_id = r.account_id
                  AND p.cycle_date > r.last_reported AND p.cycle_date < :d)
ORDER BY r.account_id COLLATE BINARY;
