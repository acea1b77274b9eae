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
       (SELECT MAX(x.cycle_date) FROM decision_actions x
          JOIN decisions c ON c.cycle_date = x.cycle_date AND c.account_id = x.account_id
         WHERE x.account_id = h.account_id AND x.action = 'lawyer_letter' AND c.replay = 0),
       (SELECT MAX(x.cycle_date) FROM decision_actions x
          JOIN decisions c ON c.cycle_date = x.cycle_date AND c.account_id = x.account_id
         WHERE x.account_id = h.account_id AND x.action = 'credit_report' AND c.replay = 0)
FROM held h
JOIN latest l ON h.last_seen < l.cycle_date
ORDER BY h.account_id COLLATE BINARY;
