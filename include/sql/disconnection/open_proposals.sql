-- The batch of D still to be released: proposals with no work order yet.
SELECT p.account_id, p.notice_id, p.outstanding_fen, p.earliest_disconnection
FROM disconnection_proposals p
WHERE p.cycle_date = :d
  AND NOT EXISTS (SELECT 1 FROM disconnection_orders o WHERE o.notice_id = p.notice_id)
ORDER BY p.earliest_disconnection, p.account_id COLLATE BINARY;
