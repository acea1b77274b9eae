-- The message outbox: one row per message, keyed by its idempotency key
-- <cycle date>:<account id>:<channel> (one message per channel per account per day).
-- A row is written before anything is dispatched and updated after every attempt, so a retry,
-- a rerun of the same date or a crashed worker finds what was already sent.
-- status: queued -> sending -> sent | failed (retried) | permanent_failure
--         queued/failed -> deferred (outside the contact window; sent when it opens)
--         unsent -> expired (a later cycle date decided the account) | cancelled (D was re-run
--         and no longer wants the message)
CREATE TABLE outbox (
    idem_key         TEXT PRIMARY KEY,
    cycle_date       DATE NOT NULL,
    account_id       TEXT NOT NULL,
    channel          TEXT NOT NULL,
    address          TEXT NOT NULL,          -- the holder's own email or mobile, as of D
    language         TEXT NOT NULL,
    kinds            TEXT NOT NULL,          -- ';'-list of the message kinds it carries
    template         TEXT NOT NULL,
    template_version TEXT NOT NULL,          -- sha256 prefix of the template sources
    subject          TEXT NOT NULL DEFAULT '',
    body_text        TEXT NOT NULL,
    body_html        TEXT NOT NULL DEFAULT '',
    content_sha256   TEXT NOT NULL,
    message_id       TEXT NOT NULL UNIQUE,   -- deterministic from idem_key
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT NOT NULL DEFAULT '',
    gateway_answer   TEXT NOT NULL DEFAULT '',
    queued_at        TEXT NOT NULL,
    claimed_at       TEXT,                   -- start of the current or last attempt (UTC)
    sent_at          TEXT,
    run_id           TEXT NOT NULL DEFAULT '',
    task_id          TEXT NOT NULL DEFAULT '',
    try_number       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_date_status ON outbox (cycle_date, status);
CREATE INDEX outbox_account ON outbox (account_id, cycle_date);
