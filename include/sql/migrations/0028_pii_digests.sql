-- The log masker's compact form of one extract's personal data (arrears.audit.pii): a sorted
-- array of 64-bit digests of the values and the lengths they come in, built once per delivery
-- (fingerprint) so that a task's start-up reads one row instead of the whole extract. Digests
-- only mask (a match hides text); nothing reads a value back from them. Ingest clears D's row
-- with D's delivery and the retention purge clears the rows of the dates it purges.
CREATE TABLE pii_digests (
    cycle_date      DATE PRIMARY KEY,        -- the extract's date
    fingerprint     TEXT NOT NULL,           -- deliveries.fingerprint the digests were built from
    value_count     INTEGER NOT NULL,
    lengths         TEXT NOT NULL,           -- comma list of the values' lengths in characters
    digests         BYTEA NOT NULL           -- little-endian uint64, sorted, no repeats
);
