-- Decisions as data (issue 19): each action of a decision is a row, so later steps ask
-- "which accounts have this action" with an index instead of LIKE '%…%' on the ';'-list (kept
-- in decisions.actions for the CSV and for people). And what later steps need of the
-- disconnection part of a decision, as columns instead of parsed out of reason codes.
CREATE TABLE decision_actions (
    cycle_date      DATE NOT NULL,
    account_id      TEXT NOT NULL,
    action          TEXT NOT NULL,
    PRIMARY KEY (cycle_date, account_id, action)
);
CREATE INDEX decision_actions_by_action ON decision_actions (action, account_id, cycle_date);

WITH RECURSIVE split (cycle_date, account_id, action, rest) AS (
    SELECT cycle_date, account_id, '', actions || ';' FROM decisions
    UNION ALL
    SELECT cycle_date, account_id, substr(rest, 1, instr(rest, ';') - 1),
           substr(rest, instr(rest, ';') + 1)
    FROM split WHERE rest <> ''
)
INSERT INTO decision_actions (cycle_date, account_id, action)
SELECT DISTINCT cycle_date, account_id, action FROM split WHERE action <> '';

-- The earliest disconnection date of the notice a decision issued (the message names it).
ALTER TABLE decisions ADD COLUMN disconnection_earliest DATE;
UPDATE decisions
SET disconnection_earliest = substr(reasons, instr(reasons, 'disconnection_notice:earliest_') + 30, 10)
WHERE instr(reasons, 'disconnection_notice:earliest_') > 0;

-- An earlier disconnection notice still open with no order on it today (agents' hint).
ALTER TABLE decisions ADD COLUMN notice_pending INTEGER NOT NULL DEFAULT 0;
UPDATE decisions SET notice_pending = 1 WHERE instr(reasons, 'disconnection:notice_') > 0;

-- The notices staff must serve in person (';'-list in SERVED_NOTICES order; field visits).
ALTER TABLE decisions ADD COLUMN serve_in_person TEXT NOT NULL DEFAULT '';
UPDATE decisions SET serve_in_person = 'credit_prenotice'
WHERE instr(reasons, 'field_visit:serve_credit_prenotice_in_person') > 0;
UPDATE decisions
SET serve_in_person = CASE WHEN serve_in_person = '' THEN 'disconnection_notice'
                           ELSE serve_in_person || ';disconnection_notice' END
WHERE instr(reasons, 'field_visit:serve_disconnection_notice_in_person') > 0;
