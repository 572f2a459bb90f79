"""Subject keys and account secrets in PostgreSQL, wrapped under the master key
(ledger/subject_keys.py holds the cryptography; docs/erasure.md the design).

Writers ask for keys with `keys_for_writing`, which makes the missing ones; readers with
`keys_for_reading`, which never does: a subject without a key has been erased, and its sealed
data reads as erased. Keys are made with ON CONFLICT DO NOTHING and read back, so concurrent
writers of one subject agree on one key without a lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from lead_ledger.ledger import subject_keys
from lead_ledger.ledger.connection import Connection

SELECT_KEYS: Final = """
SELECT subject_id, wrapped_key FROM subject_keys WHERE subject_id = ANY($1::text[])
"""
INSERT_KEYS: Final = """
INSERT INTO subject_keys (subject_id, account_id, wrapped_key)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[])
ON CONFLICT (subject_id) DO NOTHING
"""
DELETE_KEYS: Final = "DELETE FROM subject_keys WHERE subject_id = ANY($1::text[])"
SELECT_ACCOUNT_WRAPPED: Final = "SELECT wrapped_secret FROM account_secrets WHERE account_id = $1"
INSERT_ACCOUNT_WRAPPED: Final = """
INSERT INTO account_secrets (account_id, wrapped_secret) VALUES ($1, $2)
ON CONFLICT (account_id) DO NOTHING
"""
SELECT_ANY_WRAPPED: Final = """
(SELECT wrapped_key FROM subject_keys LIMIT 1)
UNION ALL (SELECT wrapped_secret FROM account_secrets LIMIT 1)
LIMIT 1
"""
SELECT_ALL_KEYS: Final = "SELECT subject_id, wrapped_key FROM subject_keys FOR UPDATE"
UPDATE_KEYS: Final = """
UPDATE subject_keys k SET wrapped_key = u.wrapped
FROM unnest($1::text[], $2::bytea[]) AS u(subject_id, wrapped)
WHERE k.subject_id = u.subject_id
"""
SELECT_ALL_ACCOUNT_WRAPPED: Final = (
    "SELECT account_id, wrapped_secret FROM account_secrets FOR UPDATE"
)
UPDATE_ACCOUNTS_WRAPPED: Final = """
UPDATE account_secrets a SET wrapped_secret = u.wrapped
FROM unnest($1::bigint[], $2::bytea[]) AS u(account_id, wrapped)
WHERE a.account_id = u.account_id
"""


async def keys_for_reading(
    conn: Connection, master_key: bytes, subjects: Iterable[str]
) -> dict[str, bytes]:
    """The data keys of those subjects that have one; an erased subject is absent."""
    rows = await conn.fetch(SELECT_KEYS, list(set(subjects)))
    return {row["subject_id"]: subject_keys.unwrap(master_key, row["wrapped_key"]) for row in rows}


async def keys_for_writing(
    conn: Connection, master_key: bytes, account_id: int, subjects: Iterable[str]
) -> dict[str, bytes]:
    """The data key of every subject, made (and stored wrapped) for those without one."""
    wanted = set(subjects)
    found = await keys_for_reading(conn, master_key, wanted)
    missing = sorted(wanted - set(found))
    if missing:
        fresh = [subject_keys.new_data_key() for _ in missing]
        await conn.execute(
            INSERT_KEYS,
            missing,
            [account_id] * len(missing),
            [subject_keys.wrap(master_key, key) for key in fresh],
        )
        # Read back: where another writer made a subject's key first, its key is the one.
        found |= await keys_for_reading(conn, master_key, missing)
    return found


async def erase(conn: Connection, subjects: Iterable[str]) -> int:
    """Delete the subjects' keys: what is sealed with them can never be read again. Returns how
    many subjects had a key."""
    status: str = await conn.execute(DELETE_KEYS, sorted(set(subjects)))
    return int(status.rsplit(" ", 1)[1])


async def account_secret(conn: Connection, master_key: bytes, account_id: int) -> bytes:
    """The account's secret for dedupe digests, made on first use."""
    wrapped = await conn.fetchval(SELECT_ACCOUNT_WRAPPED, account_id)
    if wrapped is None:
        fresh = subject_keys.wrap(master_key, subject_keys.new_data_key())
        await conn.execute(INSERT_ACCOUNT_WRAPPED, account_id, fresh)
        wrapped = await conn.fetchval(SELECT_ACCOUNT_WRAPPED, account_id)
    return subject_keys.unwrap(master_key, wrapped)


async def check_master_key(conn: Connection, master_key: bytes) -> None:
    """Raise SubjectKeyError when keys are stored and this master key does not open them, so a
    server with the wrong key refuses to start rather than reading every subject as erased."""
    wrapped = await conn.fetchval(SELECT_ANY_WRAPPED)
    if wrapped is not None:
        try:
            subject_keys.unwrap(master_key, wrapped)
        except subject_keys.SubjectKeyError:
            raise subject_keys.SubjectKeyError(
                "LEDGER_MASTER_KEY does not open the keys this database holds: it is not the"
                " key they were stored with"
            ) from None


async def rotate(conn: Connection, old_master: bytes, new_master: bytes) -> int:
    """Re-wrap every stored key and secret under `new_master`, in the caller's transaction;
    no event changes. Returns how many were re-wrapped."""
    if not conn.is_in_transaction():
        raise RuntimeError("rotate the keys inside one transaction: all or none")
    # The cryptography is per key, in Python; the writes are one statement per table, not one
    # round trip per subject.
    keys = await conn.fetch(SELECT_ALL_KEYS)
    await conn.execute(
        UPDATE_KEYS,
        [row["subject_id"] for row in keys],
        [_rewrap(old_master, new_master, row["wrapped_key"]) for row in keys],
    )
    wrapped_secrets = await conn.fetch(SELECT_ALL_ACCOUNT_WRAPPED)
    await conn.execute(
        UPDATE_ACCOUNTS_WRAPPED,
        [row["account_id"] for row in wrapped_secrets],
        [_rewrap(old_master, new_master, row["wrapped_secret"]) for row in wrapped_secrets],
    )
    return len(keys) + len(wrapped_secrets)


def _rewrap(old_master: bytes, new_master: bytes, wrapped: bytes) -> bytes:
    return subject_keys.wrap(new_master, subject_keys.unwrap(old_master, wrapped))
