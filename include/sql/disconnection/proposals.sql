-- D's proposed orders: accounts whose decision of D says disconnection_order, with the notice
-- pending as of D that the order acts on.
SELECT d.account_id, n.notice_id, d.outstanding_fen, n.earliest_disconnection
FROM {decisions} d JOIN disconnection_notices n ON n.account_id = d.account_id
WHERE d.cycle_date = :d
  AND EXISTS (SELECT 1 FROM {decision_actions} x
              WHERE x.cycle_date = d.cycle_date AND x.account_id = d.account_id
                AND x.action = 'disconnection_order')
  AND n.served_on < :d AND (n.closed_on IS NULL OR n.closed_on >= :d)
ORDER BY d.account_id COLLATE BINARY, n.notice_id COLLATE BINARY;
