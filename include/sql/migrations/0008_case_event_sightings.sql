-- Which case events each delivery carried (as payment_sightings does for payments): re-delivering
-- D removes an event only when no other day's delivery carried it (CONTRACT §1). Events that no
-- delivery carried (recorded by people, not the extract) have no sightings and are never removed.
CREATE TABLE case_event_sightings (
    cycle_date      DATE NOT NULL,
    event_id        TEXT NOT NULL,
    PRIMARY KEY (cycle_date, event_id)
);
CREATE INDEX case_event_sightings_event ON case_event_sightings (event_id, cycle_date);
-- Before this table only the first sighting was known.
INSERT INTO case_event_sightings (cycle_date, event_id) SELECT first_seen, event_id FROM case_events;
