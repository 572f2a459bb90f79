-- One index serves every contacts lookup. Each lookup matches `kind` and `value` (one value or
-- any of a list), and some also one campaign or a list of them; none reads a campaign's contacts
-- without a value. `(campaign_id, kind, value)` (0002) and `(kind, value)` (0003) both indexed
-- every contact row's value, so each row written cost two inserts into a wide text btree and a
-- rebuild sorted every value twice. `(kind, value, campaign_id)` answers both kinds of lookup
-- as an index scan, the campaign compared inside the index (docs/decisions.md, "One index for
-- contact lookups").
--
-- On a large ledger the index build holds writes to `contacts` for its duration (about 2 s per
-- million contact rows here); run the migration when the service is stopped or quiet.

CREATE INDEX contacts_value_idx ON contacts (kind, value, campaign_id);
DROP INDEX contacts_lookup_idx;
DROP INDEX contacts_kind_value_idx;
