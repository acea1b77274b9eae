-- What happened, as opposed to what was decided (CONTRACT §2 "Served means delivered", §4
-- "Replays never change the real record").

-- Service of a legal notice: a message carrying it was accepted by the far end (source
-- message:<outbox idem_key>) or staff served it in person (source event:<case event id>).
-- served_on is the delivery date in the utility's time zone; known_on the cycle date from which
-- the cycle may know it (the delivery date, or the day the case event arrived).
CREATE TABLE notice_service (
    source          TEXT NOT NULL,
    notice          TEXT NOT NULL,            -- credit_prenotice | disconnection_notice
    account_id      TEXT NOT NULL,
    served_on       DATE NOT NULL,
    known_on        DATE NOT NULL,
    decided_on      DATE,                     -- the cycle date whose decision issued it
    PRIMARY KEY (source, notice)
);
CREATE INDEX notice_service_account ON notice_service (account_id, served_on);

-- An address that failed permanently (SMTP 5xx, a gateway's permanent error) for a channel:
-- a contact gap until the extract brings a different address. Generic per channel, so every
-- channel (and a fallback between channels) reads the same record.
CREATE TABLE contact_gaps (
    account_id      TEXT NOT NULL,
    channel         TEXT NOT NULL,
    address         TEXT NOT NULL,
    since_date      DATE NOT NULL,            -- local date of the failed attempt
    reason          TEXT NOT NULL,            -- permanent_failure:<first 200 chars of the error>
    source          TEXT NOT NULL,            -- message:<outbox idem_key>
    PRIMARY KEY (account_id, channel, address)
);

-- The service (notice_service.source) that made a disconnection notice.
ALTER TABLE disconnection_notices ADD COLUMN source TEXT NOT NULL DEFAULT '';
