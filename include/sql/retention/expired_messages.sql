-- Messages dated on or before the cut-off whose address and text are still held.
SELECT idem_key, account_id, address FROM outbox
WHERE cycle_date <= :cutoff AND address NOT LIKE 'sha256:%'
ORDER BY idem_key COLLATE BINARY;
