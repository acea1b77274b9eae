-- Disconnection notices that D's messages talk about: the one served on D (its earliest
-- disconnection date) and the latest one closed other than by a work order (a cancellation).
SELECT n.account_id, n.served_on, n.earliest_disconnection, n.closed_on, n.closed_reason
FROM disconnection_notices n
JOIN decisions d ON d.cycle_date = :d AND d.account_id = n.account_id
WHERE d.message_kinds <> '' AND n.served_on <= :d
ORDER BY n.account_id COLLATE BINARY, n.served_on, n.notice_id COLLATE BINARY;
