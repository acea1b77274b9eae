-- Open notices served before D whose account is gone from D's extract (paid in full) or whose
-- outstanding on D is below the disconnection minimum.
SELECT n.notice_id, n.account_id,
       CASE WHEN d.account_id IS NULL THEN 'cancelled:paid_in_full'
            ELSE 'cancelled:below_minimum' END AS reason
FROM disconnection_notices n
LEFT JOIN decisions d ON d.account_id = n.account_id AND d.cycle_date = :d
WHERE n.served_on < :d AND n.closed_on IS NULL
  AND (d.account_id IS NULL OR d.outstanding_fen < :minimum)
ORDER BY n.account_id COLLATE BINARY, n.notice_id COLLATE BINARY;
