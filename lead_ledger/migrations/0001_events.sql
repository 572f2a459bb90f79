-- The event log: the single source of truth. Every other table is a projection of it.

CREATE TABLE events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid        NOT NULL,
    stream_id       text        NOT NULL,
    stream_version  integer     NOT NULL CHECK (stream_version > 0),
    -- The tenant the stream belongs to (NULL for global streams), so that account-scoped feeds
    -- and audit queries need no join to a projection that may since have forgotten the lead.
    account_id      bigint,
    type            text        NOT NULL,
    schema_version  smallint    NOT NULL DEFAULT 1,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- now() is the transaction's start: every event of one append shares it, and it is set
    -- exactly once, by the database, so projections never read a clock of their own.
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    -- The writing transaction's id. The global feed reads only below the oldest transaction
    -- still running, so a reader never passes over an event that commits late.
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_feed_idx ON events (transaction_id, position);
CREATE INDEX events_account_feed_idx ON events (account_id, transaction_id, position);
CREATE INDEX events_recorded_at_idx ON events (recorded_at);

COMMENT ON TABLE events IS 'Append-only event log; UPDATE, DELETE and TRUNCATE are rejected by triggers.';

-- Immutability is the database's job, not the application's: whoever connects, with whatever
-- tool, cannot rewrite history. Statement-level triggers fire even when no row matches, so
-- `DELETE FROM events` on an empty table fails just the same.
CREATE FUNCTION events_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Record a new event (for example LeadUpdated or LeadDeleted) instead.';
END;
$$;

CREATE TRIGGER events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();

-- LISTEN/NOTIFY only wakes feed readers; they always re-read from the table. Notifications are
-- delivered at commit and folded per transaction, so this costs one message per append.
CREATE FUNCTION events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ledger_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify_after_insert
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();
