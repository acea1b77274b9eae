-- Open notices served before D that lapse on D (CONTRACT §2 notice lifecycle), with the first
-- reason that applies: the account is gone from D's extract (paid in full), its outstanding is
-- below the disconnection minimum, it left escalation, or the notice is notice_valid_days past
-- its earliest disconnection date without a released order (an order closes the notice).
SELECT n.notice_id, n.account_id,
       CASE WHEN d.account_id IS NULL THEN 'notice_lapsed:paid_in_full'
            WHEN d.outstanding_fen < :minimum THEN 'notice_lapsed:below_minimum'
            WHEN d.stage <> 'escalation' THEN 'notice_lapsed:left_escalation'
            ELSE 'notice_lapsed:expired' END AS reason
FROM disconnection_notices n
LEFT JOIN decisions d ON d.account_id = n.account_id AND d.cycle_date = :d AND d.replay = 0
WHERE n.served_on < :d AND n.closed_on IS NULL
  AND (d.account_id IS NULL OR d.outstanding_fen < :minimum OR d.stage <> 'escalation'
       OR n.earliest_disconnection <= :expired_on_or_before)
ORDER BY n.account_id COLLATE BINARY, n.notice_id COLLATE BINARY;
