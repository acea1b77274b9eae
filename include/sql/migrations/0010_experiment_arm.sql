-- Champion/challenger (CONTRACT §5): the experiment and arm each decision was made under.
-- Blank when no experiment ran; policy_version (already on every row) names the policy of the arm.
ALTER TABLE decisions ADD COLUMN experiment_id TEXT NOT NULL DEFAULT '';
ALTER TABLE decisions ADD COLUMN arm TEXT NOT NULL DEFAULT '';

-- Roll rates (CONTRACT §5): the stage transitions from the previous cycle date to each cycle
-- date, counted once when D is published, so month-to-date figures are sums over a few rows
-- instead of a join over a month of decisions. roll_days marks the dates counted (a day may
-- count no transition at all).
CREATE TABLE roll_days (
    cycle_date      DATE PRIMARY KEY,
    previous_cycle  DATE
);
CREATE TABLE roll_transitions (
    cycle_date      DATE NOT NULL,           -- the later date of the pair
    experiment_id   TEXT NOT NULL,
    arm             TEXT NOT NULL,
    stage           TEXT NOT NULL,           -- on the previous cycle date
    next_stage      TEXT NOT NULL,           -- on cycle_date ('gone': left the extract)
    accounts        INTEGER NOT NULL,
    PRIMARY KEY (cycle_date, experiment_id, arm, stage, next_stage)
);
