-- Where each part of D's accounts starts (every size-th account id in byte order, after the
-- first): the mapped decide tasks split the accounts at these ids.
SELECT account_id FROM (
    SELECT account_id, ROW_NUMBER() OVER (ORDER BY account_id COLLATE BINARY) AS n
    FROM extract_accounts WHERE cycle_date = :d
) numbered
WHERE n > 1 AND (n - 1) % :size = 0
ORDER BY account_id COLLATE BINARY;
