-- Cancelled notices whose customer D's decision tells (its message carries disconnection_cancelled).
SELECT n.notice_id, n.account_id
FROM decisions d JOIN disconnection_notices n ON n.account_id = d.account_id
WHERE d.cycle_date = :d AND d.replay = 0 AND d.message_kinds LIKE '%disconnection_cancelled%'
  AND n.closed_on < :d AND n.closed_reason <> 'order_released'
ORDER BY n.account_id COLLATE BINARY, n.notice_id COLLATE BINARY;
