-- Every decision (any experiment or none) of the experiment's accounts in its period.
SELECT d.account_id, d.cycle_date, d.stage
FROM decisions d
WHERE d.replay = 0 AND d.cycle_date >= :start AND d.cycle_date <= :end
  AND d.account_id IN (SELECT m.account_id FROM decisions m WHERE m.experiment_id = :e
                       AND m.replay = 0 AND m.cycle_date <= :as_of);
