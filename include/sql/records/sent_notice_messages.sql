-- Messages accepted by the far end that carry a legal notice and are not yet recorded as service.
SELECT o.idem_key, o.account_id, o.cycle_date, o.kinds, o.sent_at
FROM outbox o
WHERE o.status = 'sent'
  AND (o.kinds LIKE '%credit_prenotice%' OR o.kinds LIKE '%disconnection_notice%')
  AND NOT EXISTS (SELECT 1 FROM notice_service s WHERE s.source = 'message:' || o.idem_key)
ORDER BY o.sent_at, o.idem_key;
