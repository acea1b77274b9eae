-- Opt-outs customers sent by reply (POST /arrears/api/receipts) still in force on D, for the
-- accounts of one part, in account order: they add to the extract's own opt_out list.
SELECT o.account_id, o.channel
FROM channel_opt_outs o
WHERE o.opted_out_on <= :d AND (o.lifted_on IS NULL OR o.lifted_on > :d)
  AND o.account_id >= :lo COLLATE BINARY
  AND (CAST(:hi AS TEXT) IS NULL OR o.account_id < :hi COLLATE BINARY)
ORDER BY o.account_id COLLATE BINARY, o.channel;
