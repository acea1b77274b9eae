-- Accounts absent from the latest extract on or before the as-of date whose personal data is still held,
-- with the dates their retention periods run from (arrears.retention.purge): the first extract
-- without them, their latest contact (message, disconnection notice, lawyer letter) and their
-- latest credit-bureau report.
WITH held AS (
    SELECT account_id, MAX(cycle_date) AS last_seen
    FROM extract_accounts
    WHERE cycle_date <= :d AND holder_name NOT LIKE 'sha256:%'
    GROUP BY account_id
), latest AS (
    SELECT MAX(cycle_date) AS cycle_date FROM deliveries WHERE cycle_date <= :d
)
SELECT h.account_id,
       (SELECT MIN(x.cycle_date) FROM deliveries x
         WHERE x.cycle_date > h.last_seen AND x.cycle_date <= :d),
       (SELECT MAX(o.cycle_date) FROM outbox o WHERE o.account_id = h.account_id),
       (SELECT MAX(n.served_on) FROM disconnection_notices n WHERE n.account_id = h.account_id),
       (SELECT MAX(c.cycle_date) FROM decisions c
         WHERE c.account_id = h.account_id AND c.replay = 0 AND c.actions LIKE '%lawyer_letter%'),
       (SELECT MAX(c.cycle_date) FROM decisions c
         WHERE c.account_id = h.account_id AND c.replay = 0 AND c.actions LIKE '%credit_report%')
FROM held h
JOIN latest l ON h.last_seen < l.cycle_date
ORDER BY h.account_id COLLATE BINARY;
