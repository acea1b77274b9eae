-- Per-account decision state (issue 13): what the policy needs of the earlier real decisions,
-- one row per account, so that a cycle's history read costs the same after a year as after a
-- week. The policy reads the latest decision's stage spell and only the latest date of each of
-- the four actions below (arrears.cycle.state says why the latest is enough). The row holds
-- them through the date in decision_state_through: the real decides of the dates up to it and
-- nothing after. Ids, stages and dates only: nothing personal (retention has nothing to purge).
CREATE TABLE decision_state (
    account_id                  TEXT PRIMARY KEY,
    stage                       TEXT NOT NULL,   -- of the latest real decision
    stage_entered_on            DATE NOT NULL,   -- the day that stage's spell began
    last_credit_prenotice       DATE,            -- the latest decision with each action
    last_disconnection_notice   DATE,
    last_lawyer_letter          DATE,
    last_credit_report          DATE
);
-- One row: the state holds the real decisions of every date up to ``through``; NULL: to be
-- rebuilt from the decisions (a real decide rewrote a date the state had already taken in).
CREATE TABLE decision_state_through (
    id                          INTEGER PRIMARY KEY CHECK (id = 1),
    through                     DATE
);
INSERT INTO decision_state_through (id, through) VALUES (1, NULL);
