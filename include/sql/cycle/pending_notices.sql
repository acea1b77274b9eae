-- Disconnection notices of D's accounts as of D, with their state:
-- pending (served before D, not closed before D), released (closed before D by a work order),
-- cancelled (closed before D by a cancellation the customer has not been told of before D).
SELECT n.account_id, n.notice_id, n.served_on, n.earliest_disconnection,
       CASE WHEN n.closed_on IS NULL OR n.closed_on >= :d THEN 'pending'
            WHEN n.closed_reason = 'order_released' THEN 'released'
            ELSE 'cancelled' END AS state,
       n.closed_on
FROM disconnection_notices n JOIN extract_accounts a ON a.account_id = n.account_id AND a.cycle_date = :d
WHERE n.served_on < :d
  AND a.account_id >= :lo COLLATE BINARY
  AND (CAST(:hi AS TEXT) IS NULL OR a.account_id < :hi COLLATE BINARY)
  AND (n.closed_on IS NULL OR n.closed_on >= :d OR n.closed_reason = 'order_released'
       OR NOT EXISTS (SELECT 1 FROM disconnection_log t
                      WHERE t.notice_id = n.notice_id AND t.event = 'cancellation_told'
                        AND t.cycle_date < :d))
ORDER BY n.account_id COLLATE BINARY, n.served_on, n.notice_id COLLATE BINARY;
