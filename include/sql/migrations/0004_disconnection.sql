-- Disconnection: proposals of each cycle, the supervisor's answer per batch, released work
-- orders, and an append-only log of every step (for the audit trail). Every row names the DAG
-- run, task and try that wrote it.

-- The orders a cycle proposed (one batch per cycle date), replaced when D is re-run.
CREATE TABLE disconnection_proposals (
    cycle_date             DATE NOT NULL,
    notice_id              TEXT NOT NULL,
    account_id             TEXT NOT NULL,
    outstanding_fen        BIGINT NOT NULL,
    earliest_disconnection DATE NOT NULL,
    run_id                 TEXT NOT NULL,
    task_id                TEXT NOT NULL,
    try_number             INTEGER NOT NULL,
    PRIMARY KEY (cycle_date, notice_id)
);

-- The supervisor's answer to a batch: approved, rejected, or timed out (rejected by default).
CREATE TABLE disconnection_approvals (
    approval_id     TEXT PRIMARY KEY,         -- <cycle date>/<release DAG run id>
    cycle_date      DATE NOT NULL,
    outcome         TEXT NOT NULL,            -- approved | rejected | timed_out
    responded_by    TEXT NOT NULL DEFAULT '', -- the Airflow user who answered
    responded_at    TEXT NOT NULL DEFAULT '',
    proposals       INTEGER NOT NULL,
    amount_fen      BIGINT NOT NULL,
    run_id          TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    try_number      INTEGER NOT NULL
);

-- Released work orders: at most one per notice, ever.
CREATE TABLE disconnection_orders (
    order_id        TEXT PRIMARY KEY,
    notice_id       TEXT NOT NULL UNIQUE,
    account_id      TEXT NOT NULL,
    cycle_date      DATE NOT NULL,            -- the batch (proposal date) it was released from
    released_on     DATE NOT NULL,
    approved_by     TEXT NOT NULL,
    approval_id     TEXT NOT NULL REFERENCES disconnection_approvals (approval_id),
    run_id          TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    try_number      INTEGER NOT NULL
);
CREATE INDEX disconnection_orders_released ON disconnection_orders (released_on);

-- Append-only: notice_served, notice_cancelled, cancellation_told, order_released,
-- order_withheld. event_id is deterministic, so a retry or re-run records nothing twice.
CREATE TABLE disconnection_log (
    event_id        TEXT PRIMARY KEY,
    event           TEXT NOT NULL,
    cycle_date      DATE NOT NULL,
    account_id      TEXT NOT NULL,
    notice_id       TEXT NOT NULL,
    detail          TEXT NOT NULL DEFAULT '',
    run_id          TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    try_number      INTEGER NOT NULL
);
CREATE INDEX disconnection_log_notice ON disconnection_log (notice_id, event);
