-- Bulk jobs (DESIGN.md section 7). The job's history is its event stream `job-<id>`; `jobs` is
-- the projection of it. The other three tables are coordination state, not projections: the
-- uploaded payload, the work queue with its leases, and the callback outbox. They are written
-- in the same transactions as the job's events, so they never disagree with the log.

CREATE SEQUENCE job_ids;

CREATE TABLE jobs (
    job_id             bigint PRIMARY KEY,
    account_id         bigint NOT NULL,
    dialect            text NOT NULL,
    kind               text NOT NULL,
    campaign_id        bigint,
    upload_ref         text,
    state              text NOT NULL,  -- queued | done | failed
    received           integer NOT NULL,
    inserted           integer NOT NULL,
    updated            integer NOT NULL,
    reassigned         integer NOT NULL,
    rejected           integer NOT NULL,
    rejected_rows      jsonb NOT NULL,
    error              text,
    callback_url       text,
    callback_state     text,           -- pending | delivered | abandoned, NULL without a URL
    submitted_at       timestamptz NOT NULL,
    completed_at       timestamptz,
    callback_attempts  jsonb NOT NULL
);
CREATE INDEX jobs_account_idx ON jobs (account_id, job_id);

-- The upload as received, read once by the worker that runs the job.
CREATE TABLE job_payloads (
    job_id   bigint PRIMARY KEY,
    payload  bytea NOT NULL
);

-- Claimed with FOR UPDATE SKIP LOCKED; a running row whose lease has expired is claimable
-- again (its worker died), and since a job's work commits in one transaction with `done`, a
-- retried job never finds half of its own leads.
CREATE TABLE job_queue (
    job_id        bigint PRIMARY KEY,
    account_id    bigint NOT NULL,
    kind          text NOT NULL,
    campaign_id   bigint,
    state         text NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'done', 'failed')),
    lease_owner   text,
    lease_until   timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    available_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_queue_claimable_idx ON job_queue (available_at, job_id)
    WHERE state IN ('queued', 'running');

-- Written in the job's completing transaction; delivered afterwards, with retries.
CREATE TABLE callback_outbox (
    job_id           bigint PRIMARY KEY,
    account_id       bigint NOT NULL,
    url              text NOT NULL,
    body             jsonb NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    abandoned_at     timestamptz
);
CREATE INDEX callback_outbox_due_idx ON callback_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND abandoned_at IS NULL;
