-- The collection database, portable between SQLite and PostgreSQL.
-- Money is integer fen (BIGINT); dates are DATE ('YYYY-MM-DD' text on SQLite).

-- One row per landing folder ingested: what was delivered and its fingerprint.
CREATE TABLE deliveries (
    cycle_date      DATE PRIMARY KEY,
    fingerprint     TEXT NOT NULL,           -- sha256 over the files' bytes
    files           TEXT NOT NULL,           -- JSON: file -> {sha256, rows, quarantined}
    ingested_at     TEXT NOT NULL
);

-- The extract of each cycle date, replaced whole when a folder is re-delivered.
CREATE TABLE extract_accounts (
    cycle_date      DATE NOT NULL,
    account_id      TEXT NOT NULL,
    holder_name     TEXT NOT NULL,
    customer_class  TEXT NOT NULL,
    service_address TEXT NOT NULL DEFAULT '',
    email           TEXT NOT NULL DEFAULT '',
    mobile          TEXT NOT NULL DEFAULT '',
    language        TEXT NOT NULL DEFAULT 'zh-CN',
    protections     TEXT NOT NULL DEFAULT '',  -- ';'-list
    opt_out         TEXT NOT NULL DEFAULT '',  -- ';'-list
    PRIMARY KEY (cycle_date, account_id)
);

CREATE TABLE extract_bills (
    cycle_date      DATE NOT NULL,
    bill_id         TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    bill_period     TEXT NOT NULL,
    amount_fen      BIGINT NOT NULL,
    due_date        DATE NOT NULL,
    PRIMARY KEY (cycle_date, bill_id)
);
CREATE INDEX extract_bills_account ON extract_bills (cycle_date, account_id);

-- Payments and case events are remembered across cycles: the first sighting of a key wins.
CREATE TABLE payments (
    payment_id      TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL,
    bill_id         TEXT NOT NULL DEFAULT '',
    amount_fen      BIGINT NOT NULL,
    paid_at         TEXT NOT NULL,
    paid_on         DATE NOT NULL,           -- paid_at's date in the utility's time zone
    first_seen      DATE NOT NULL
);

-- Which payments each delivery listed as not yet netted in its open items.
CREATE TABLE payment_sightings (
    cycle_date      DATE NOT NULL,
    payment_id      TEXT NOT NULL REFERENCES payments (payment_id),
    PRIMARY KEY (cycle_date, payment_id)
);

CREATE TABLE case_events (
    event_id        TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    effective_date  DATE NOT NULL,
    amount_fen      BIGINT,
    until_date      DATE,
    note            TEXT NOT NULL DEFAULT '',
    first_seen      DATE NOT NULL
);
CREATE INDEX case_events_account ON case_events (account_id);

-- Rows that failed validation, with file, line and reason (replaced on re-delivery).
CREATE TABLE quarantine (
    cycle_date      DATE NOT NULL,
    file            TEXT NOT NULL,
    line            INTEGER NOT NULL,
    reason          TEXT NOT NULL,
    raw             TEXT NOT NULL,
    PRIMARY KEY (cycle_date, file, line)
);

-- Bills of the cycle date after that day's payments were applied (oldest first when unassigned).
CREATE TABLE staged_bills (
    cycle_date      DATE NOT NULL,
    bill_id         TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    bill_period     TEXT NOT NULL,
    due_date        DATE NOT NULL,
    amount_fen      BIGINT NOT NULL,
    paid_fen        BIGINT NOT NULL,
    open_fen        BIGINT NOT NULL,
    PRIMARY KEY (cycle_date, bill_id)
);
CREATE INDEX staged_bills_account ON staged_bills (cycle_date, account_id);

-- One decision per account of the extract per cycle date. A replay (backfill) writes its
-- decisions with replay = 1; the history that later decisions read comes from replay = 0 only.
CREATE TABLE decisions (
    cycle_date       DATE NOT NULL,
    account_id       TEXT NOT NULL,
    stage            TEXT NOT NULL,
    stage_entered_on DATE NOT NULL,
    dpd              INTEGER NOT NULL,
    outstanding_fen  BIGINT NOT NULL,
    late_fee_fen     BIGINT NOT NULL,
    actions          TEXT NOT NULL,         -- ';'-list, contract order
    holds            TEXT NOT NULL,         -- ';'-list, contract order
    message_kinds    TEXT NOT NULL,         -- ';'-list of what the day's message carries
    reasons          TEXT NOT NULL,         -- ';'-list of rule codes
    policy_version   TEXT NOT NULL,
    replay           INTEGER NOT NULL DEFAULT 0,
    run_id           TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (cycle_date, account_id)
);
CREATE INDEX decisions_account ON decisions (account_id, cycle_date);

-- Late fee per bill behind each decision (letters and notices show it bill by bill).
CREATE TABLE decision_bills (
    cycle_date      DATE NOT NULL,
    account_id      TEXT NOT NULL,
    bill_id         TEXT NOT NULL,
    days_overdue    INTEGER NOT NULL,
    late_fee_fen    BIGINT NOT NULL,
    PRIMARY KEY (cycle_date, bill_id)
);

-- Each run of a cycle date, normal or replay.
CREATE TABLE cycle_runs (
    run_id          TEXT PRIMARY KEY,
    cycle_date      DATE NOT NULL,
    run_type        TEXT NOT NULL,
    replay          INTEGER NOT NULL,
    allow_contact   INTEGER NOT NULL DEFAULT 0,
    started_at      TEXT NOT NULL
);

-- Disconnection notices served to customers. Pending as of D: served before D and not closed
-- before D (closed_on is the day it was cancelled or turned into an order).
CREATE TABLE disconnection_notices (
    notice_id              TEXT PRIMARY KEY,
    account_id             TEXT NOT NULL,
    served_on              DATE NOT NULL,
    earliest_disconnection DATE NOT NULL,
    closed_on              DATE,
    closed_reason          TEXT
);
CREATE INDEX disconnection_notices_account ON disconnection_notices (account_id, served_on);
