-- Read models. Each is a pure function of the events table and can be rebuilt from it
-- (`lead-ledger projections rebuild`). Every table has a bigint key column that names the
-- stream its rows come from (lead_id for lead views, account_id for configuration), so that
-- one key's rows are folded from one stream, in stream order, live and in a rebuild alike.

CREATE SEQUENCE account_ids;
CREATE SEQUENCE campaign_ids;
CREATE SEQUENCE lead_ids;

CREATE TABLE accounts (
    account_id  bigint PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX accounts_name_key ON accounts (lower(name));

CREATE TABLE settings (
    account_id          bigint PRIMARY KEY,
    api_authentication  text NOT NULL,
    default_region      text,
    office_hours        jsonb,
    rate_limits         jsonb NOT NULL,
    updated_at          timestamptz NOT NULL
);

CREATE TABLE credentials (
    account_id     bigint NOT NULL,
    credential_id  text PRIMARY KEY,
    dialect        text NOT NULL,
    key_sha256     text NOT NULL,
    revoked        boolean NOT NULL,
    issued_at      timestamptz NOT NULL
);
CREATE INDEX credentials_account_idx ON credentials (account_id);
CREATE UNIQUE INDEX credentials_key_idx ON credentials (key_sha256);

CREATE TABLE users (
    account_id     bigint NOT NULL,
    username       text NOT NULL,
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL
);
CREATE INDEX users_account_idx ON users (account_id);
CREATE UNIQUE INDEX users_username_key ON users (username);

CREATE TABLE agents (
    account_id  bigint NOT NULL,
    agent_id    text NOT NULL,
    name        text,
    added_at    timestamptz NOT NULL,
    PRIMARY KEY (account_id, agent_id)
);

CREATE TABLE skills (
    account_id  bigint NOT NULL,
    name        text NOT NULL,
    added_at    timestamptz NOT NULL,
    PRIMARY KEY (account_id, name)
);

CREATE TABLE campaigns (
    account_id   bigint NOT NULL,
    campaign_id  bigint PRIMARY KEY,
    name         text NOT NULL,
    direction    text NOT NULL,
    assignment   text NOT NULL,
    dial_mode    text NOT NULL,
    state        text NOT NULL,
    crm_fields   text[],
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE UNIQUE INDEX campaigns_account_name_key ON campaigns (account_id, name);

-- The live leads: one row per lead that is live, every canonical field.
CREATE TABLE leads (
    lead_id           bigint PRIMARY KEY,
    account_id        bigint NOT NULL,
    campaign_id       bigint NOT NULL,
    version           integer NOT NULL,
    phone_numbers     text[] NOT NULL,
    dedupe_keys       text[] NOT NULL,
    name              text,
    first_name        text,
    middle_initial    text,
    last_name         text,
    title             text,
    salutation        text,
    company           text,
    address1          text,
    address2          text,
    address3          text,
    city              text,
    state             text,
    postal_code       text,
    country           text,
    email             text,
    comments          text,
    user_data         text,
    reference_number  text,
    crm               jsonb NOT NULL,
    agent             text,
    skill             text,
    priority          integer NOT NULL,
    expires_at        timestamptz,
    status            text NOT NULL,
    extra             jsonb NOT NULL,
    entry_at          timestamptz NOT NULL,
    modified_at       timestamptz NOT NULL
);
CREATE INDEX leads_account_campaign_idx ON leads (account_id, campaign_id, lead_id);
CREATE INDEX leads_account_idx ON leads (account_id, lead_id);

-- The archive: one row per archived lead, the snapshot and the lead version it came from.
CREATE TABLE lead_archive (LIKE leads INCLUDING DEFAULTS);
ALTER TABLE lead_archive
    ADD COLUMN source_version   integer NOT NULL,
    ADD COLUMN archive_version  integer NOT NULL,
    ADD COLUMN archived_at      timestamptz NOT NULL,
    ADD PRIMARY KEY (lead_id);
CREATE INDEX lead_archive_account_idx ON lead_archive (account_id, lead_id);

-- The contact index: what duplicate checks and updates by reference look up, per campaign.
-- kind: 'phone' (dedupe key), 'user_data', 'reference_number', or 'crm:<section:field>'.
CREATE TABLE contacts (
    lead_id      bigint NOT NULL,
    campaign_id  bigint NOT NULL,
    kind         text NOT NULL,
    value        text NOT NULL
);
CREATE INDEX contacts_lookup_idx ON contacts (campaign_id, kind, value);
CREATE INDEX contacts_lead_idx ON contacts (lead_id);

-- When each view was last rebuilt. Inline projections commit with their events, so they are
-- never behind the log; this records rebuilds, not a per-append position (see docs/decisions.md).
CREATE TABLE projection_checkpoints (
    name          text PRIMARY KEY,
    position      bigint NOT NULL,
    rows          bigint NOT NULL,
    rebuilt_at    timestamptz NOT NULL
);

CREATE SCHEMA ledger_shadow;
