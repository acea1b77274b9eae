-- Disputes opened on the experiment's accounts in its period (known by its last date).
SELECT e.account_id, e.effective_date
FROM case_events e
WHERE e.event_type = 'dispute_opened' AND e.effective_date >= :start
  AND e.effective_date <= :end AND e.first_seen <= :end
  AND e.account_id IN (SELECT m.account_id FROM decisions m WHERE m.experiment_id = :e
                       AND m.replay = 0 AND m.cycle_date <= :as_of);
