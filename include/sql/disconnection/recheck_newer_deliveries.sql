-- Deliveries ingested after the latest staged date but not yet staged, with the account's
-- presence in each extract and the payments of it sighted there.
SELECT v.cycle_date,
       (SELECT COUNT(*) FROM extract_accounts a
        WHERE a.cycle_date = v.cycle_date AND a.account_id = :a) AS present,
       (SELECT COUNT(*) FROM payment_sightings s JOIN payments p ON p.payment_id = s.payment_id
        WHERE s.cycle_date = v.cycle_date AND p.account_id = :a) AS payments
FROM deliveries v WHERE v.cycle_date > :s AND v.cycle_date <= :r ORDER BY v.cycle_date;
