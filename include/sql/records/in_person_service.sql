-- notice_served case events known by D and not yet recorded as service.
SELECT e.event_id, e.account_id, e.note, e.effective_date, e.first_seen
FROM case_events e
WHERE e.event_type = 'notice_served' AND e.first_seen <= :d AND e.effective_date <= :d
  AND NOT EXISTS (SELECT 1 FROM notice_service s WHERE s.source = 'event:' || e.event_id)
ORDER BY e.effective_date, e.event_id;
