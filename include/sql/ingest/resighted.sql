-- A payment or case event that D's delivery carried counts as known from D on, even when a
-- later day's delivery was ingested first (a re-delivered or late D).
UPDATE payments SET first_seen = :d
    WHERE first_seen > :d
      AND EXISTS (SELECT 1 FROM payment_sightings s
                  WHERE s.payment_id = payments.payment_id AND s.cycle_date = :d);
UPDATE case_events SET first_seen = :d
    WHERE first_seen > :d
      AND EXISTS (SELECT 1 FROM case_event_sightings s
                  WHERE s.event_id = case_events.event_id AND s.cycle_date = :d);
