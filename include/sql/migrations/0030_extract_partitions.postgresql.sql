-- D's extract loaded unindexed, then indexed (issue 13). Loading a million rows into the indexed
-- extract tables cost 5.6-8.9x a raw COPY (three btrees grown row by row); so each cycle date's
-- rows live in their own partition, which the ingest creates as a plain table, loads with COPY,
-- indexes with one sort per index and then attaches (arrears.ingest.load). The DEFAULT partitions
-- take rows written any other way. The columns, keys and index stay what 0001/0012 made them.
DROP VIEW staged_bills;
ALTER TABLE extract_accounts RENAME TO extract_accounts_0029;
ALTER INDEX extract_accounts_pkey RENAME TO extract_accounts_0029_pkey;
ALTER TABLE extract_bills RENAME TO extract_bills_0029;
ALTER INDEX extract_bills_pkey RENAME TO extract_bills_0029_pkey;
ALTER INDEX extract_bills_account RENAME TO extract_bills_0029_account;

CREATE TABLE extract_accounts (
    cycle_date      DATE NOT NULL,
    account_id      TEXT NOT NULL,
    holder_name     TEXT NOT NULL,
    customer_class  TEXT NOT NULL,
    service_address TEXT NOT NULL DEFAULT '',
    email           TEXT NOT NULL DEFAULT '',
    mobile          TEXT NOT NULL DEFAULT '',
    language        TEXT NOT NULL DEFAULT 'zh-CN',
    protections     TEXT NOT NULL DEFAULT '',  -- ';'-list
    opt_out         TEXT NOT NULL DEFAULT '',  -- ';'-list
    wechat_openid   TEXT NOT NULL DEFAULT '',
    app_user_id     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (cycle_date, account_id)
) PARTITION BY LIST (cycle_date);
CREATE TABLE extract_accounts_default PARTITION OF extract_accounts DEFAULT;

CREATE TABLE extract_bills (
    cycle_date      DATE NOT NULL,
    bill_id         TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    bill_period     TEXT NOT NULL,
    amount_fen      BIGINT NOT NULL,
    due_date        DATE NOT NULL,
    PRIMARY KEY (cycle_date, bill_id)
) PARTITION BY LIST (cycle_date);
CREATE INDEX extract_bills_account ON extract_bills (cycle_date, account_id);
CREATE TABLE extract_bills_default PARTITION OF extract_bills DEFAULT;

-- Each recorded date into its own partition, named as the ingest names it (extract_*_YYYYMMDD).
-- (The migrator splits statements at a line ending in a semicolon: inside the block none does.)
DO $$
DECLARE
    day DATE
    ; tab TEXT
; BEGIN
    FOR tab, day IN SELECT 'extract_accounts', cycle_date FROM extract_accounts_0029
                    UNION SELECT 'extract_bills', cycle_date FROM extract_bills_0029 LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES IN (%L)',
                       tab || '_' || to_char(day, 'YYYYMMDD'), tab, day)
        ; EXECUTE format('INSERT INTO %I SELECT * FROM %I WHERE cycle_date = %L',
                         tab, tab || '_0029', day)
    ; END LOOP
; END $$;

DROP TABLE extract_accounts_0029;
DROP TABLE extract_bills_0029;

CREATE VIEW staged_bills AS
    SELECT b.cycle_date, b.bill_id, b.account_id, b.bill_period, b.due_date, b.amount_fen,
           COALESCE(p.paid_fen, 0) AS paid_fen, b.amount_fen - COALESCE(p.paid_fen, 0) AS open_fen
    FROM extract_bills b
    JOIN staged_dates s ON s.cycle_date = b.cycle_date
    LEFT JOIN staged_payments p ON p.cycle_date = b.cycle_date AND p.bill_id = b.bill_id;
