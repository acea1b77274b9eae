-- Channels beyond email and SMS (CONTRACT §1, §7): the new address columns of the extract, the
-- slot a message belongs to (for the same-day fallback), receipts and replies, and the opt-outs
-- customers sent by reply.
ALTER TABLE extract_accounts ADD COLUMN wechat_openid TEXT NOT NULL DEFAULT '';
ALTER TABLE extract_accounts ADD COLUMN app_user_id TEXT NOT NULL DEFAULT '';

-- fallback: the later channels of the message's slot, in order (';'-list), tried the same day
-- when this one fails permanently; fallback_of: the key of the message this one stands in for.
ALTER TABLE outbox ADD COLUMN fallback TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN fallback_of TEXT NOT NULL DEFAULT '';
-- What the far end reported back (receipts): delivered / failed / opted_out, once per key.
ALTER TABLE outbox ADD COLUMN receipt TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN receipt_at TEXT;

-- Every receipt and reply posted to POST /arrears/api/receipts, as received (a repeated
-- receipt for a key is stored once: the first one wins).
CREATE TABLE channel_receipts (
    receipt_id      TEXT PRIMARY KEY,        -- 'receipt:<key>' or 'reply:<sha256 of the body>'
    kind            TEXT NOT NULL,           -- receipt | reply
    idem_key        TEXT NOT NULL DEFAULT '',
    channel         TEXT NOT NULL,
    address         TEXT NOT NULL DEFAULT '',
    account_id      TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL DEFAULT '', -- delivered | failed | opted_out | reply text
    detail          TEXT NOT NULL DEFAULT '',
    received_at     TEXT NOT NULL,
    received_on     DATE NOT NULL,           -- in the utility's time zone
    posted_by       TEXT NOT NULL            -- the Airflow user, or 'hmac:<connection>'
);
CREATE INDEX channel_receipts_day ON channel_receipts (received_on, channel);

-- Opt-outs by reply or receipt: the channel stays stopped for the account whatever later
-- extracts say, until an extract later than the opt-out first lists the channel in opt_out
-- (the billing system has it) and a still later one no longer does (the customer opted in).
CREATE TABLE channel_opt_outs (
    account_id      TEXT NOT NULL,
    channel         TEXT NOT NULL,
    opted_out_on    DATE NOT NULL,
    source          TEXT NOT NULL,           -- the receipt_id that carried it
    acknowledged_on DATE,                    -- first extract after it that listed the channel
    lifted_on       DATE,                    -- first extract after that one that did not
    PRIMARY KEY (account_id, channel, opted_out_on)
);
