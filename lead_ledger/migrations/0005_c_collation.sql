-- Key columns compare bytes. They hold identifiers and lookup keys (stream ids, dedupe keys,
-- contact kinds and values) that are only ever matched for equality or put in a deterministic
-- order, never sorted for a reader. Under a libc locale such as C.UTF-8 every comparison in their
-- btrees calls strcoll and gets no abbreviated keys; under "C" it is a memcmp, which makes the
-- index sorts of a rebuild and the index inserts of a bulk write cheaper (docs/decisions.md
-- "Key columns compare bytes (COLLATE "C")"). Equality is the same under both, so no lookup
-- finds anything else.
--
-- Only the collation changes, not the type: the rows are not rewritten, the indexes on these
-- columns are rebuilt. The small configuration tables keep the database's collation.

ALTER TABLE events ALTER COLUMN stream_id TYPE text COLLATE "C";

ALTER TABLE contacts
    ALTER COLUMN kind TYPE text COLLATE "C",
    ALTER COLUMN value TYPE text COLLATE "C";
