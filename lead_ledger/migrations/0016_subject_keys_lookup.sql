-- Subject ids compare bytes, as the other key columns do since 0005: `lead-123`, `rejected-7-4`
-- are only matched for equality (every write of a new subject inserts one into the primary
-- key, and the rebuild looks one up for each sealed event it opens) or read in a deterministic
-- order (a key rotation's batches), never sorted for a reader. Under the database's libc
-- collation each btree comparison was a strcoll; under "C" it is a memcmp. Only the collation
-- changes: the rows are not rewritten, the primary key is rebuilt.
--
-- `subject_keys_account_idx` is dropped: no statement reads subject keys by account (an
-- erasure finds its subjects by id), and every new subject paid an insert into it.

ALTER TABLE subject_keys ALTER COLUMN subject_id TYPE text COLLATE "C";
DROP INDEX subject_keys_account_idx;
