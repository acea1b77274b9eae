-- Issue 13: decision_actions_by_action keeps only the actions that are read by name across
-- dates and accounts: the four escalation steps (the history and the decision state's fold,
-- the paid-after-report check, retention). The channels' messages and the call list, ~3 of the
-- ~3.4 rows an account a day, are only ever read by (cycle_date, account_id), the key: their
-- entries in this index were the largest single write of a decide and were never read.
-- Spelled as ORs, not IN: SQLite uses a partial index only when one of the query's terms is
-- one of the predicate's (action = 'credit_report'), PostgreSQL either way.
DROP INDEX decision_actions_by_action;
CREATE INDEX decision_actions_by_action ON decision_actions (action, account_id, cycle_date)
WHERE action = 'credit_prenotice' OR action = 'disconnection_notice'
   OR action = 'lawyer_letter' OR action = 'credit_report';
