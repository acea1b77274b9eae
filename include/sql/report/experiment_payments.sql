-- Payments of the experiment's accounts received in its period (known by its last date).
SELECT p.account_id, p.paid_on, p.amount_fen
FROM payments p
WHERE p.paid_on >= :start AND p.paid_on <= :end AND p.first_seen <= :end
  AND p.account_id IN (SELECT m.account_id FROM decisions m WHERE m.experiment_id = :e
                       AND m.replay = 0 AND m.cycle_date <= :as_of);
