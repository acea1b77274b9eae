-- The action rows of one part's decisions of D: see decision_actions.sql (PostgreSQL spells the
-- split its own way).
INSERT INTO {actions_table} ({key}cycle_date, account_id, action)
SELECT {key_value}d.cycle_date, d.account_id, a.action
FROM {decisions_table} d CROSS JOIN LATERAL unnest(string_to_array(d.actions, ';')) AS a (action)
WHERE d.cycle_date = :d AND d.run_id = :run_id AND d.actions <> ''
  AND d.account_id >= :lo COLLATE BINARY
  AND (CAST(:hi AS TEXT) IS NULL OR d.account_id < :hi COLLATE BINARY)
  AND a.action <> '';
