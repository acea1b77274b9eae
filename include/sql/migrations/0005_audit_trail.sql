-- The audit trail: append-only, hash-chained entries, one per decision and per side effect.
-- entry_hash = sha256 of the previous entry's hash and this entry's canonical JSON
-- (arrears.audit.trail). entry_key is the natural key of what the entry records, so a retried
-- or re-run task appends nothing twice.
CREATE TABLE audit_entries (
    seq             BIGINT PRIMARY KEY,       -- 1, 2, 3 ... with no gaps
    entry_key       TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,            -- decision, message, batch_file, notice, ...
    account_id      TEXT NOT NULL DEFAULT '',
    cycle_date      DATE,
    run_id          TEXT NOT NULL DEFAULT '',
    task_id         TEXT NOT NULL DEFAULT '',
    try_number      INTEGER NOT NULL DEFAULT 0,
    payload         TEXT NOT NULL,            -- canonical JSON, no personal data
    recorded_at     TEXT NOT NULL,
    prev_hash       TEXT NOT NULL,
    entry_hash      TEXT NOT NULL
);
CREATE INDEX audit_entries_account ON audit_entries (account_id, cycle_date, seq);
CREATE INDEX audit_entries_cycle ON audit_entries (cycle_date, kind);

-- The chain's head, one row: appends lock it (serialising writers) and the verifier checks
-- that the last entry is still the one the head names (no entries cut off the end).
CREATE TABLE audit_chain_head (
    id              INTEGER PRIMARY KEY,
    last_seq        BIGINT NOT NULL,
    last_hash       TEXT NOT NULL
);
INSERT INTO audit_chain_head (id, last_seq, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
