-- Forget what D's earlier delivery said, and only that (CONTRACT §1 re-delivery): D's extract,
-- quarantine and sightings; a payment or case event only when no other day's delivery carried
-- it (one that another day also carried stays, first seen on its earliest remaining sighting).
-- Events posted by people (source 'api') and their rejections are no part of D's delivery.
DELETE FROM extract_accounts WHERE cycle_date = :d;
DELETE FROM extract_bills WHERE cycle_date = :d;
DELETE FROM quarantine WHERE cycle_date = :d AND file NOT LIKE 'api:%';
DELETE FROM deliveries WHERE cycle_date = :d;
-- The log masker's digests of D's extract (arrears.audit.pii) are D's delivery's too.
DELETE FROM pii_digests WHERE cycle_date = :d;
-- D's staging applied D's payments to D's extract: it is staged again after the new one.
DELETE FROM staged_payments WHERE cycle_date = :d;
DELETE FROM staged_dates WHERE cycle_date = :d;
DELETE FROM payment_sightings WHERE cycle_date = :d;
DELETE FROM payments WHERE first_seen = :d
    AND NOT EXISTS (SELECT 1 FROM payment_sightings s WHERE s.payment_id = payments.payment_id);
UPDATE payments SET first_seen = (SELECT MIN(s.cycle_date) FROM payment_sightings s
                                  WHERE s.payment_id = payments.payment_id)
    WHERE first_seen = :d;
DELETE FROM case_events
    WHERE source = 'extract'
      AND EXISTS (SELECT 1 FROM case_event_sightings s
                  WHERE s.event_id = case_events.event_id AND s.cycle_date = :d)
      AND NOT EXISTS (SELECT 1 FROM case_event_sightings s
                      WHERE s.event_id = case_events.event_id AND s.cycle_date <> :d);
DELETE FROM case_event_sightings WHERE cycle_date = :d;
UPDATE case_events SET first_seen = (SELECT MIN(s.cycle_date) FROM case_event_sightings s
                                     WHERE s.event_id = case_events.event_id)
    WHERE first_seen = :d AND source = 'extract'
      AND EXISTS (SELECT 1 FROM case_event_sightings s WHERE s.event_id = case_events.event_id);
