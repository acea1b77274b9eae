-- Staging: the bills of cycle date D after the payments sighted in D's delivery, stored as what
-- the payments paid (staged_payments; the view staged_bills applies it to D's extract).
-- A payment naming a bill pays that bill (any excess joins the account's pool); the pool pays
-- the account's bills oldest first (due_date, then bill_id). Only the accounts with a payment
-- sighted on D are read (a payment names its own account's bills: ingest checks it).
-- Portable SQLite/PostgreSQL.
DELETE FROM staged_payments WHERE cycle_date = :d;
DELETE FROM staged_dates WHERE cycle_date = :d;
INSERT INTO staged_payments (cycle_date, bill_id, paid_fen)
WITH sighted AS (
    SELECT p.account_id, p.bill_id, p.amount_fen
    FROM payment_sightings s JOIN payments p ON p.payment_id = s.payment_id
    WHERE s.cycle_date = :d
),
direct AS (
    SELECT bill_id, SUM(amount_fen) AS paid FROM sighted WHERE bill_id <> '' GROUP BY bill_id
),
bills AS (
    SELECT b.cycle_date, b.bill_id, b.account_id, b.due_date, b.amount_fen,
           CASE WHEN COALESCE(d.paid, 0) > b.amount_fen THEN b.amount_fen ELSE COALESCE(d.paid, 0) END AS direct_paid,
           CASE WHEN COALESCE(d.paid, 0) > b.amount_fen THEN COALESCE(d.paid, 0) - b.amount_fen ELSE 0 END AS overflow
    FROM extract_bills b LEFT JOIN direct d ON d.bill_id = b.bill_id
    WHERE b.cycle_date = :d AND b.account_id IN (SELECT account_id FROM sighted)
),
pool AS (
    SELECT account_id, SUM(amount) AS pool FROM (
        SELECT account_id, amount_fen AS amount FROM sighted WHERE bill_id = ''
        UNION ALL
        SELECT account_id, overflow FROM bills WHERE overflow > 0
    ) x GROUP BY account_id
),
ordered AS (
    -- Only the accounts with money in the pool need the running total (a window sort).
    SELECT bills.*, pool.pool - COALESCE(SUM(bills.amount_fen - bills.direct_paid) OVER (
               PARTITION BY bills.account_id ORDER BY bills.due_date, bills.bill_id
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS left_in_pool
    FROM bills JOIN pool ON pool.account_id = bills.account_id
),
allocated AS (
    SELECT ordered.*,
           CASE WHEN left_in_pool <= 0 THEN 0
                WHEN left_in_pool >= amount_fen - direct_paid THEN amount_fen - direct_paid
                ELSE left_in_pool END AS pooled_paid
    FROM ordered
    UNION ALL
    SELECT bills.*, 0, 0 FROM bills WHERE NOT EXISTS (SELECT 1 FROM pool WHERE pool.account_id = bills.account_id)
)
SELECT cycle_date, bill_id, direct_paid + pooled_paid
FROM allocated
WHERE direct_paid + pooled_paid > 0;
INSERT INTO staged_dates (cycle_date) VALUES (:d);
