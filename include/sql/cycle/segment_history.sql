-- The facts the segment rules (CONTRACT §6) read, for the accounts of D's extract in one part,
-- bounded by "since" (D minus the rules' longest window): never a full-history scan.
--   payment          paid_on; flag 1 when the account still had overdue bills after it (the
--                    staging of the date the payment was first seen): a part payment
--   reminder         a message carrying a reminder that was delivered (outbox status sent)
--   notice_served    a credit pre-notice or disconnection notice delivered (served means
--                    delivered, CONTRACT §2), a disconnection notice's recorded service, or
--                    staff's service in person (case event notice_served, §8)
--   promise_broken   a promise to pay whose until_date passed with the account still overdue on
--                    the first cycle date after it
SELECT f.account_id, f.fact, f.day, f.flag FROM (
    SELECT p.account_id, 'payment' AS fact, p.paid_on AS day,
           CASE WHEN EXISTS (SELECT 1 FROM staged_bills s
                             WHERE s.cycle_date = p.first_seen AND s.account_id = p.account_id
                               AND s.open_fen > 0 AND s.due_date < s.cycle_date)
                THEN 1 ELSE 0 END AS flag
    FROM payments p JOIN extract_accounts a ON a.account_id = p.account_id AND a.cycle_date = :d
    WHERE p.paid_on >= :since AND p.paid_on <= :d AND p.first_seen <= :d
      AND a.account_id >= :lo COLLATE BINARY
      AND (CAST(:hi AS TEXT) IS NULL OR a.account_id < :hi COLLATE BINARY)
    UNION ALL
    SELECT o.account_id,
           CASE WHEN o.kinds LIKE '%reminder%' THEN 'reminder' ELSE 'notice_served' END,
           o.cycle_date, 0
    FROM outbox o JOIN extract_accounts a ON a.account_id = o.account_id AND a.cycle_date = :d
    WHERE o.cycle_date >= :since AND o.cycle_date < :d AND o.status = 'sent'
      AND (o.kinds LIKE '%reminder%' OR o.kinds LIKE '%credit_prenotice%'
           OR o.kinds LIKE '%disconnection_notice%')
      AND a.account_id >= :lo COLLATE BINARY
      AND (CAST(:hi AS TEXT) IS NULL OR a.account_id < :hi COLLATE BINARY)
    UNION ALL
    SELECT n.account_id, 'notice_served', n.served_on, 0
    FROM disconnection_notices n JOIN extract_accounts a ON a.account_id = n.account_id AND a.cycle_date = :d
    WHERE n.served_on >= :since AND n.served_on < :d
      AND a.account_id >= :lo COLLATE BINARY
      AND (CAST(:hi AS TEXT) IS NULL OR a.account_id < :hi COLLATE BINARY)
    UNION ALL
    SELECT e.account_id, 'notice_served', e.effective_date, 0
    FROM case_events e JOIN extract_accounts a ON a.account_id = e.account_id AND a.cycle_date = :d
    WHERE e.event_type = 'notice_served' AND e.first_seen <= :d
      AND e.effective_date >= :since AND e.effective_date <= :d
      AND a.account_id >= :lo COLLATE BINARY
      AND (CAST(:hi AS TEXT) IS NULL OR a.account_id < :hi COLLATE BINARY)
    UNION ALL
    SELECT e.account_id, 'promise_broken', e.until_date, 0
    FROM case_events e JOIN extract_accounts a ON a.account_id = e.account_id AND a.cycle_date = :d
    WHERE e.event_type = 'promise_to_pay' AND e.first_seen <= :d
      AND e.until_date >= :since AND e.until_date < :d
      AND a.account_id >= :lo COLLATE BINARY
      AND (CAST(:hi AS TEXT) IS NULL OR a.account_id < :hi COLLATE BINARY)
      AND EXISTS (SELECT 1 FROM staged_bills s
                  WHERE s.account_id = e.account_id AND s.open_fen > 0 AND s.due_date < s.cycle_date
                    AND s.cycle_date = (SELECT MIN(x.cycle_date) FROM deliveries x
                                        WHERE x.cycle_date > e.until_date AND x.cycle_date <= :d))
) f
ORDER BY f.account_id COLLATE BINARY, f.day, f.fact;
