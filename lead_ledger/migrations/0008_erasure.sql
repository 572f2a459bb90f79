-- Erasure (docs/erasure.md). An erased subject keeps its row as a tombstone without a key, so
-- no writer can make the subject a fresh key and write readable data for it again; `lookup`
-- holds keyed digests (HMAC-SHA256 under the account's secret) of the subject's phone numbers
-- and user_data, for finding every subject an erasure request names, deleted leads and refused
-- rows included. Both are cleared when the subject is erased.
ALTER TABLE subject_keys
    ALTER COLUMN wrapped_key DROP NOT NULL,
    ADD COLUMN lookup text[] NOT NULL DEFAULT '{}',
    ADD COLUMN erased_at timestamptz;
CREATE INDEX subject_keys_lookup_idx ON subject_keys USING gin (lookup);
