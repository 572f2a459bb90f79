-- One random value wrapped under the master key, stored by the first process that checks its
-- key against this database (key_store.check_master_key), and re-wrapped by `keys rotate`.
-- Every process checks its key against it before it writes: two processes started on a fresh
-- database with different keys cannot both store keys (the second finds the first's value and
-- refuses), and the check no longer depends on which stored key a LIMIT 1 happens to read.
CREATE TABLE master_key_canary (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    wrapped bytea NOT NULL
);
