-- What happened to D's accounts before D (CONTRACT §2: the record, never the plan): messages of
-- recent cycle dates that were sent, are still on their way, or were superseded unsent by a later
-- date (contact limits: never fewer than were sent), notices served (delivered or in person) and
-- addresses that failed for good. Strictly before D, so a re-run of D after its own dispatch
-- decides exactly as the first run did.
SELECT r.account_id, r.kind, r.day, r.channel, r.address FROM (
    SELECT o.account_id, 'message' AS kind, o.cycle_date AS day, o.channel, '' AS address
    FROM outbox o JOIN extract_accounts a ON a.account_id = o.account_id AND a.cycle_date = :d
    WHERE o.cycle_date >= :recent AND o.cycle_date < :d
      AND o.status IN ('queued', 'sending', 'sent', 'deferred', 'failed', 'expired')
      AND a.account_id >= :lo COLLATE BINARY
      AND (CAST(:hi AS TEXT) IS NULL OR a.account_id < :hi COLLATE BINARY)
    UNION ALL
    SELECT s.account_id, s.notice, s.served_on, '', ''
    FROM notice_service s JOIN extract_accounts a ON a.account_id = s.account_id AND a.cycle_date = :d
    WHERE s.known_on <= :d AND s.served_on < :d
      AND a.account_id >= :lo COLLATE BINARY
      AND (CAST(:hi AS TEXT) IS NULL OR a.account_id < :hi COLLATE BINARY)
    UNION ALL
    SELECT g.account_id, 'contact_gap', g.since_date, g.channel, g.address
    FROM contact_gaps g JOIN extract_accounts a ON a.account_id = g.account_id AND a.cycle_date = :d
    WHERE g.since_date < :d
      AND a.account_id >= :lo COLLATE BINARY
      AND (CAST(:hi AS TEXT) IS NULL OR a.account_id < :hi COLLATE BINARY)
) r
ORDER BY r.account_id COLLATE BINARY, r.day, r.kind, r.channel;
