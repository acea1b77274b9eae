-- Messages that failed for good, whose address is not yet a contact gap.
SELECT o.idem_key, o.account_id, o.channel, o.address, o.cycle_date, o.claimed_at, o.last_error
FROM outbox o
WHERE o.status = 'permanent_failure'
  AND NOT EXISTS (SELECT 1 FROM contact_gaps g WHERE g.account_id = o.account_id
                  AND g.channel = o.channel AND g.address = o.address)
ORDER BY o.idem_key;
