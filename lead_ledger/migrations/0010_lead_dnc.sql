-- Do-not-call marks of live leads (docs/dnc.md): one row per entry that marks a lead, folded
-- from LeadMarkedDnc and LeadDncCleared on the lead's stream. A lead reads `DNC` while one of
-- its rows has not expired (`expires_at` null or later than the read's now).
CREATE TABLE lead_dnc (
    lead_id     bigint NOT NULL,
    entry_id    bigint NOT NULL,
    scope       text NOT NULL,
    expires_at  timestamptz,
    marked_at   timestamptz NOT NULL,
    PRIMARY KEY (lead_id, entry_id)
);
-- An entry changed or removed finds the leads it marks.
CREATE INDEX lead_dnc_entry_idx ON lead_dnc (entry_id);
