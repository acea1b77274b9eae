-- Credit-bureau objections past their alert threshold (CONTRACT §8): one mail to ops per
-- objection, whatever reruns and retries happen (the row is written in the sending transaction).
CREATE TABLE objection_alerts (
    event_id        TEXT PRIMARY KEY,        -- the bureau_objection event
    account_id      TEXT NOT NULL,
    cycle_date      DATE NOT NULL,           -- the cycle that alerted
    sent_to         TEXT NOT NULL
);

-- Accounts reported to the bureau and later paid in full: the "paid" record written for them
-- (CONTRACT §8), once per report, in the first monthly file after the payment.
CREATE TABLE bureau_paid_reports (
    account_id      TEXT NOT NULL,
    cycle_date      DATE NOT NULL,           -- the file that carried the paid record
    PRIMARY KEY (account_id, cycle_date)
);
