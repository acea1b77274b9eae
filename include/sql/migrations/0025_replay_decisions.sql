-- Replays apart (issue 11, CONTRACT §4): a replay (backfill, dry run) decides D into storage of
-- its own, keyed by its run id, never into `decisions`, which later cycles, the contact history
-- and the audit read. The same columns as the real tables, with run_id first in the key.
CREATE TABLE replay_decisions (
    run_id           TEXT NOT NULL,
    cycle_date       DATE NOT NULL,
    account_id       TEXT NOT NULL,
    stage            TEXT NOT NULL,
    stage_entered_on DATE NOT NULL,
    dpd              INTEGER NOT NULL,
    outstanding_fen  BIGINT NOT NULL,
    late_fee_fen     BIGINT NOT NULL,
    actions          TEXT NOT NULL,
    holds            TEXT NOT NULL,
    message_kinds    TEXT NOT NULL,
    reasons          TEXT NOT NULL,
    policy_version   TEXT NOT NULL,
    replay           INTEGER NOT NULL DEFAULT 1,
    segment          TEXT NOT NULL DEFAULT 'new',
    late_fee_waived  INTEGER NOT NULL DEFAULT 0,
    experiment_id    TEXT NOT NULL DEFAULT '',
    arm              TEXT NOT NULL DEFAULT '',
    disconnection_earliest DATE,
    notice_pending   INTEGER NOT NULL DEFAULT 0,
    serve_in_person  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, cycle_date, account_id)
);
CREATE TABLE replay_decision_actions (
    run_id          TEXT NOT NULL,
    cycle_date      DATE NOT NULL,
    account_id      TEXT NOT NULL,
    action          TEXT NOT NULL,
    PRIMARY KEY (run_id, cycle_date, account_id, action)
);
CREATE TABLE replay_decision_bills (
    run_id          TEXT NOT NULL,
    cycle_date      DATE NOT NULL,
    account_id      TEXT NOT NULL,
    bill_id         TEXT NOT NULL,
    days_overdue    INTEGER NOT NULL,
    late_fee_fen    BIGINT NOT NULL,
    PRIMARY KEY (run_id, cycle_date, bill_id)
);

-- Replays recorded before this migration (dates that had no real run) move to their own
-- storage, so `decisions` holds the real record only.
INSERT INTO replay_decisions (run_id, cycle_date, account_id, stage, stage_entered_on, dpd,
    outstanding_fen, late_fee_fen, actions, holds, message_kinds, reasons, policy_version, replay,
    segment, late_fee_waived, experiment_id, arm, disconnection_earliest, notice_pending,
    serve_in_person)
SELECT run_id, cycle_date, account_id, stage, stage_entered_on, dpd, outstanding_fen,
       late_fee_fen, actions, holds, message_kinds, reasons, policy_version, 1, segment,
       late_fee_waived, experiment_id, arm, disconnection_earliest, notice_pending, serve_in_person
FROM decisions WHERE replay = 1;
INSERT INTO replay_decision_actions (run_id, cycle_date, account_id, action)
SELECT d.run_id, x.cycle_date, x.account_id, x.action
FROM decision_actions x JOIN decisions d ON d.cycle_date = x.cycle_date AND d.account_id = x.account_id
WHERE d.replay = 1;
INSERT INTO replay_decision_bills (run_id, cycle_date, account_id, bill_id, days_overdue, late_fee_fen)
SELECT d.run_id, b.cycle_date, b.account_id, b.bill_id, b.days_overdue, b.late_fee_fen
FROM decision_bills b JOIN decisions d ON d.cycle_date = b.cycle_date AND d.account_id = b.account_id
WHERE d.replay = 1;
DELETE FROM decision_actions WHERE EXISTS (
    SELECT 1 FROM decisions d WHERE d.cycle_date = decision_actions.cycle_date
    AND d.account_id = decision_actions.account_id AND d.replay = 1);
DELETE FROM decision_bills WHERE EXISTS (
    SELECT 1 FROM decisions d WHERE d.cycle_date = decision_bills.cycle_date
    AND d.account_id = decision_bills.account_id AND d.replay = 1);
DELETE FROM decisions WHERE replay = 1;
