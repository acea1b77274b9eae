-- Messages delivered to the experiment's accounts in its period, per account and day.
SELECT o.account_id, o.cycle_date, COUNT(*)
FROM outbox o
WHERE o.status = 'sent' AND o.cycle_date >= :start AND o.cycle_date <= :end
  AND o.account_id IN (SELECT m.account_id FROM decisions m WHERE m.experiment_id = :e
                       AND m.replay = 0 AND m.cycle_date <= :as_of)
GROUP BY o.account_id, o.cycle_date;
