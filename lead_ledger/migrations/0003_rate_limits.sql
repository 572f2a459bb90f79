-- Rate limits counted in PostgreSQL, so they hold across every server process. One row per
-- (account, bucket, minute); a request increments its minute's row in a statement of its own,
-- so the row lock is held for that statement only, never for a whole request.
CREATE TABLE rate_limit_windows (
    account_id    bigint NOT NULL,
    bucket        text NOT NULL,
    window_start  timestamptz NOT NULL,
    hits          integer NOT NULL,
    PRIMARY KEY (account_id, bucket, window_start)
);

-- Lookups the native API makes without a campaign, and the audit filters by actor.
CREATE INDEX contacts_kind_value_idx ON contacts (kind, value);
CREATE INDEX events_account_actor_idx
    ON events (account_id, (metadata -> 'actor' ->> 'credential_id'), position);
