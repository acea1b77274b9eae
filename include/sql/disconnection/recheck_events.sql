-- Every case event delivered up to the release date: a dispute opened since the proposal counts.
SELECT event_id, event_type, effective_date, amount_fen, until_date
FROM case_events WHERE account_id = :a AND first_seen <= :r ORDER BY effective_date, event_id;
