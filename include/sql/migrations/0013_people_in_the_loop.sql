-- People in the loop (CONTRACT §8): case events posted through the API next to the extract's,
-- a payment plan's instalments, and who posted what.
-- source: 'extract' (case_events.csv of first_seen's delivery) or 'api' (POST
-- /arrears/api/case-events); a re-delivered extract replaces only its own rows.
ALTER TABLE case_events ADD COLUMN source TEXT NOT NULL DEFAULT 'extract';
-- The Airflow user who posted an API event ('' for the extract).
ALTER TABLE case_events ADD COLUMN recorded_by TEXT NOT NULL DEFAULT '';
-- A payment plan's schedule, ';'-list of YYYY-MM-DD:amount in due-date order (CONTRACT §1);
-- kept normalised so "the same event seen twice" compares equal whichever way it came.
ALTER TABLE case_events ADD COLUMN instalments TEXT NOT NULL DEFAULT '';

