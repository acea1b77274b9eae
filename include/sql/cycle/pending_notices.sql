-- Disconnection notices pending as of D: served before D, not closed before D.
SELECT n.account_id, n.notice_id, n.served_on, n.earliest_disconnection
FROM disconnection_notices n JOIN extract_accounts a ON a.account_id = n.account_id AND a.cycle_date = :d
WHERE n.served_on < :d AND (n.closed_on IS NULL OR n.closed_on >= :d)
ORDER BY n.account_id COLLATE BINARY, n.served_on;
