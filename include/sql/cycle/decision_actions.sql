-- The action rows of one part's decisions of D (one row per name in the ';'-list `actions`),
-- split by the database from the decisions just written instead of sent row by row (issue 13:
-- three rows an account were a fifth of the per-account cost). The tables and the key column are
-- the real record's or a replay's (arrears.cycle.decide._split_actions fills them in).
-- SQLite; PostgreSQL: decision_actions.postgresql.sql.
WITH RECURSIVE split (cycle_date, account_id, action, rest) AS (
    SELECT cycle_date, account_id, '', actions || ';'
    FROM {decisions_table}
    WHERE cycle_date = :d AND run_id = :run_id AND actions <> ''
      AND account_id >= :lo COLLATE BINARY
      AND (CAST(:hi AS TEXT) IS NULL OR account_id < :hi COLLATE BINARY)
    UNION ALL
    SELECT cycle_date, account_id, substr(rest, 1, instr(rest, ';') - 1),
           substr(rest, instr(rest, ';') + 1)
    FROM split WHERE rest <> ''
)
INSERT INTO {actions_table} ({key}cycle_date, account_id, action)
SELECT {key_value}cycle_date, account_id, action FROM split WHERE action <> '';
