-- Decisions as data (issue 19): see 0024_decision_actions.sql; PostgreSQL spells the split and
-- the string search its own way.
CREATE TABLE decision_actions (
    cycle_date      DATE NOT NULL,
    account_id      TEXT NOT NULL,
    action          TEXT NOT NULL,
    PRIMARY KEY (cycle_date, account_id, action)
);
CREATE INDEX decision_actions_by_action ON decision_actions (action, account_id, cycle_date);

INSERT INTO decision_actions (cycle_date, account_id, action)
SELECT DISTINCT d.cycle_date, d.account_id, a.action
FROM decisions d CROSS JOIN LATERAL unnest(string_to_array(d.actions, ';')) AS a (action)
WHERE a.action <> '';

ALTER TABLE decisions ADD COLUMN disconnection_earliest DATE;
UPDATE decisions
SET disconnection_earliest = CAST(substr(reasons, strpos(reasons, 'disconnection_notice:earliest_') + 30, 10) AS DATE)
WHERE strpos(reasons, 'disconnection_notice:earliest_') > 0;

ALTER TABLE decisions ADD COLUMN notice_pending INTEGER NOT NULL DEFAULT 0;
UPDATE decisions SET notice_pending = 1 WHERE strpos(reasons, 'disconnection:notice_') > 0;

ALTER TABLE decisions ADD COLUMN serve_in_person TEXT NOT NULL DEFAULT '';
UPDATE decisions SET serve_in_person = 'credit_prenotice'
WHERE strpos(reasons, 'field_visit:serve_credit_prenotice_in_person') > 0;
UPDATE decisions
SET serve_in_person = CASE WHEN serve_in_person = '' THEN 'disconnection_notice'
                           ELSE serve_in_person || ';disconnection_notice' END
WHERE strpos(reasons, 'field_visit:serve_disconnection_notice_in_person') > 0;
