-- Credit-bureau objections and their answers known as of D, every account (one that left the
-- extract keeps its objection until it is answered).
SELECT account_id, event_id, event_type, effective_date
FROM case_events
WHERE first_seen <= :d AND event_type IN ('bureau_objection', 'bureau_objection_resolved')
ORDER BY account_id COLLATE BINARY, effective_date, event_id;
