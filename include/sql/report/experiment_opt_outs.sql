-- Opt-outs the extract lists for the experiment's accounts in its period.
SELECT x.account_id, x.cycle_date, x.opt_out
FROM extract_accounts x
WHERE x.opt_out <> '' AND x.cycle_date >= :start AND x.cycle_date <= :end
  AND x.account_id IN (SELECT m.account_id FROM decisions m WHERE m.experiment_id = :e
                       AND m.replay = 0 AND m.cycle_date <= :as_of);
