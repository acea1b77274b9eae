-- Audit chain checkpoints (arrears.audit.checkpoint): the last entry a verification found
-- intact, so the next daily verification reads only the entries after it. Each checkpoint is
-- also written into the day's outbox (<outbox>/<D>/audit_checkpoints/<seq>.json), outside the
-- database: rewriting the chain and this table together still disagrees with that file.
CREATE TABLE audit_checkpoints (
    seq             BIGINT PRIMARY KEY,        -- the last entry verified
    entry_hash      TEXT NOT NULL,             -- its hash
    cycle_date      DATE NOT NULL,             -- the day whose outbox holds the anchor
    anchor          TEXT NOT NULL,             -- where the anchor file was written
    entries_read    BIGINT NOT NULL,           -- what the verification that made it read
    full_check      INTEGER NOT NULL DEFAULT 0,
    verified_at     TEXT NOT NULL
);
CREATE INDEX audit_checkpoints_date ON audit_checkpoints (cycle_date);
