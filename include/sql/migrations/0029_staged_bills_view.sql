-- Staging writes only what D's payments changed (issue 13): the bills a payment paid, with the
-- amount paid, and that D was staged. staged_bills, which every later step reads, becomes a view
-- of D's extract with those amounts applied, so staging no longer copies a million unchanged
-- bills into a second indexed table (the extract's own indexes serve the same reads).
CREATE TABLE staged_dates (
    cycle_date      DATE PRIMARY KEY         -- the stage step ran for D's delivery
);
CREATE TABLE staged_payments (
    cycle_date      DATE NOT NULL,
    bill_id         TEXT NOT NULL,
    paid_fen        BIGINT NOT NULL,         -- > 0: what D's payments paid of this bill
    PRIMARY KEY (cycle_date, bill_id)
);
INSERT INTO staged_dates (cycle_date) SELECT DISTINCT cycle_date FROM staged_bills;
INSERT INTO staged_payments (cycle_date, bill_id, paid_fen)
    SELECT cycle_date, bill_id, paid_fen FROM staged_bills WHERE paid_fen > 0;
DROP TABLE staged_bills;
CREATE VIEW staged_bills AS
    SELECT b.cycle_date, b.bill_id, b.account_id, b.bill_period, b.due_date, b.amount_fen,
           COALESCE(p.paid_fen, 0) AS paid_fen, b.amount_fen - COALESCE(p.paid_fen, 0) AS open_fen
    FROM extract_bills b
    JOIN staged_dates s ON s.cycle_date = b.cycle_date
    LEFT JOIN staged_payments p ON p.cycle_date = b.cycle_date AND p.bill_id = b.bill_id;
