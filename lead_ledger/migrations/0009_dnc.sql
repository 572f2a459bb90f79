-- Do-not-call registry (docs/dnc.md): one row per entry, folded from its dnc-<entry id> stream.
-- `number` is the entry's dedupe key, for listings (an erasure of a removed entry's number
-- leaves no row to redact: removal drops it); `digest` is its keyed hash, which checks probe.
CREATE SEQUENCE dnc_entry_ids;

CREATE TABLE dnc (
    entry_id     bigint PRIMARY KEY,
    account_id   bigint NOT NULL,
    campaign_id  bigint,
    number       text NOT NULL,
    digest       text COLLATE "C" NOT NULL,
    status       text NOT NULL,
    expires_at   timestamptz,
    source       text NOT NULL,
    added_at     timestamptz NOT NULL,
    changed_at   timestamptz NOT NULL
);
-- The check: one probe per number, account-wide and campaign entries alike.
CREATE INDEX dnc_digest_idx ON dnc (account_id, digest);
-- Reads that flag a lead's blocked numbers compare the dedupe keys the views hold.
CREATE INDEX dnc_number_idx ON dnc (account_id, number);
