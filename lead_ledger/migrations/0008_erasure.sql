-- Erasure (docs/erasure.md). An erased subject keeps its key row as a tombstone without a key,
-- so no writer can give the subject a fresh key and write readable data for it again.
ALTER TABLE subject_keys
    ALTER COLUMN wrapped_key DROP NOT NULL,
    ADD COLUMN erased_at timestamptz;

-- Keyed digests (HMAC-SHA256 under the account's secret) of the numbers and user_data that
-- the views no longer hold for a subject: a deleted lead's, a lead's numbers before a change,
-- a refused or rejected row's cells. An erasure finds live leads through `contacts` and the
-- rest through this table; rows go with their subject's key.
CREATE TABLE subject_lookup (
    account_id  bigint NOT NULL,
    digest      text NOT NULL,
    subject_id  text NOT NULL,
    PRIMARY KEY (account_id, digest, subject_id)
);
CREATE INDEX subject_lookup_subject_idx ON subject_lookup (subject_id);
