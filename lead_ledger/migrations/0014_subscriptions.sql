-- Webhook subscriptions (docs/subscriptions.md). A subscription's history is its event stream
-- `subscription-<id>`; `subscriptions` is the projection of it. The other three tables are
-- coordination state, not projections, and a rebuild never touches them: where delivery has
-- got to (the checkpoint) and who delivers (the lease), the sealed signing secret, and the
-- recent attempts. Keeping the checkpoint out of the projection is what makes a rebuild unable
-- to send anything again.

CREATE SEQUENCE subscription_ids;

CREATE TABLE subscriptions (
    subscription_id  bigint PRIMARY KEY,
    account_id       bigint NOT NULL,
    url              text NOT NULL,
    event_types      jsonb NOT NULL,  -- a list of types, or null: every lead event
    campaign_id      bigint,
    state            text NOT NULL,   -- active | paused | suspended
    created_at       timestamptz NOT NULL,
    changed_at       timestamptz NOT NULL,
    version          integer NOT NULL  -- the stream version the row reflects
);
CREATE INDEX subscriptions_account_idx ON subscriptions (account_id, subscription_id);

-- One row per subscription, made in the transaction that creates it. `checkpoint` is the feed
-- position of the last event delivered (or skipped as not matching); it moves only after a
-- 2xx, and only for the lease holder. `batch_last` and `delivery_id` name the batch in flight,
-- so a retry (by this process or the next lease holder) sends the same events under the same
-- X-Ledger-Delivery.
CREATE TABLE subscription_delivery (
    subscription_id  bigint PRIMARY KEY,
    account_id       bigint NOT NULL,
    checkpoint       bigint NOT NULL,
    batch_last       bigint,
    delivery_id      uuid,
    lease_owner      text,
    lease_until      timestamptz,
    failures         integer NOT NULL DEFAULT 0,  -- consecutive failed attempts
    failing_since    timestamptz,
    next_attempt_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscription_delivery_due_idx ON subscription_delivery (next_attempt_at);

-- The secret deliveries are signed with, sealed with the subscription's own data key
-- (subject `subscription-<id>` in subject_keys, wrapped by the master key).
CREATE TABLE subscription_secrets (
    subscription_id  bigint PRIMARY KEY,
    account_id       bigint NOT NULL,
    sealed           bytea NOT NULL
);

-- The recent attempts, for GET /v1/subscriptions/{id}/deliveries; older ones are pruned.
CREATE TABLE subscription_attempts (
    attempt_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id  bigint NOT NULL,
    delivery_id      uuid NOT NULL,
    attempted_at     timestamptz NOT NULL DEFAULT now(),
    events           integer NOT NULL,
    first_position   bigint NOT NULL,
    last_position    bigint NOT NULL,
    status_code      integer,
    error            text,
    latency_ms       double precision NOT NULL,
    delivered        boolean NOT NULL
);
CREATE INDEX subscription_attempts_idx ON subscription_attempts (subscription_id, attempt_id);
