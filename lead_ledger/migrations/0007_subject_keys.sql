-- Erasure by crypto-shredding (docs/erasure.md). Each subject's data key, wrapped under the
-- master key, which never enters the database: deleting a subject's row erases it, since what
-- the log holds of it was sealed with that key. Not a projection: the log cannot rebuild it.
CREATE TABLE subject_keys (
    subject_id   text PRIMARY KEY,
    account_id   bigint NOT NULL,
    wrapped_key  bytea NOT NULL
);
CREATE INDEX subject_keys_account_idx ON subject_keys (account_id);

-- Each account's secret for the keyed hashes of dedupe keys, wrapped the same way.
CREATE TABLE account_secrets (
    account_id      bigint PRIMARY KEY,
    wrapped_secret  bytea NOT NULL
);
