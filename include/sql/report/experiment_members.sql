-- The experiment's decisions as of a date, per account oldest first: arm, day, stage, version.
SELECT account_id, arm, cycle_date, stage, policy_version
FROM decisions
WHERE experiment_id = :e AND replay = 0 AND cycle_date <= :as_of
ORDER BY account_id COLLATE BINARY, cycle_date;
