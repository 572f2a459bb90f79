"""Subject keys and account secrets in PostgreSQL, wrapped under the master key
(ledger/subject_keys.py holds the cryptography; docs/erasure.md the design).

Writers ask for keys with `keys_for_writing`, which makes the missing ones; readers with
`keys_for_reading`, which never does: a subject without a key has been erased, and its sealed
data reads as erased. Keys are made with ON CONFLICT DO NOTHING and read back, so concurrent
writers of one subject agree on one key without a lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import asyncpg

from lead_ledger.ledger import subject_keys
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.errors import LedgerError

SELECT_KEYS: Final = """
SELECT subject_id, wrapped_key FROM subject_keys
WHERE subject_id = ANY($1::text[]) AND wrapped_key IS NOT NULL
"""
SELECT_KEYS_FOR_WRITING: Final = """
SELECT subject_id, wrapped_key FROM subject_keys WHERE subject_id = ANY($1::text[])
"""
INSERT_KEYS: Final = """
INSERT INTO subject_keys (subject_id, account_id, wrapped_key)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[])
ON CONFLICT (subject_id) DO NOTHING
RETURNING subject_id
"""
DELETE_UNUSED_KEYS: Final = "DELETE FROM subject_keys WHERE subject_id = ANY($1::text[])"
# From this many new keys on, `store_new_keys` COPYs them (the store's threshold for events:
# below it, one INSERT is fewer round trips than a savepoint and a COPY).
COPY_KEYS_FROM: Final = 256
KEY_COLUMNS: Final = ["subject_id", "account_id", "wrapped_key"]
INSERT_LOOKUP: Final = """
INSERT INTO subject_lookup (account_id, digest, subject_id)
SELECT $1, * FROM unnest($2::text[], $3::text[])
ON CONFLICT DO NOTHING
"""
# The tombstone: no key; the row stays so the subject cannot be given a new key.
ERASE_KEYS: Final = """
UPDATE subject_keys SET wrapped_key = NULL, erased_at = now()
WHERE subject_id = ANY($1::text[]) AND wrapped_key IS NOT NULL
"""
DELETE_LOOKUP: Final = "DELETE FROM subject_lookup WHERE subject_id = ANY($1::text[])"
SELECT_BY_LOOKUP: Final = """
SELECT DISTINCT l.subject_id FROM subject_lookup l
JOIN subject_keys k ON k.subject_id = l.subject_id AND k.wrapped_key IS NOT NULL
WHERE l.account_id = $1 AND l.digest = ANY($2::text[])
ORDER BY l.subject_id
"""


class SubjectErasedError(LedgerError):
    """A write for a subject that has been erased: its data may never be stored again."""

    def __init__(self, subjects: Iterable[str]) -> None:
        self.subjects = sorted(subjects)
        super().__init__(f"erased subjects cannot be written again: {', '.join(self.subjects)}")


@dataclass(frozen=True, slots=True)
class NewKeys:
    """Keys made for subjects that should have none yet, wrapped: stored by the statement that
    appends the events sealed with them (`store.append_events(new_keys=...)`), which appends
    nothing if any of those subjects had a key after all (`KeysExistedError`)."""

    by_account: Mapping[int, Mapping[str, bytes]]  # account -> subject -> wrapped key

    def columns(self) -> tuple[list[str], list[int], list[bytes]]:
        """INSERT_KEYS's parameters: subject ids, account ids, wrapped keys."""
        pairs = [(a, s, w) for a, keys in self.by_account.items() for s, w in keys.items()]
        return [s for _, s, _ in pairs], [a for a, _, _ in pairs], [w for _, _, w in pairs]


class KeysExistedError(LedgerError):
    """Some subjects that keys were made for had one already: nothing was appended."""


class KeyConflictError(LedgerError):
    """Keys made for new subjects, when some of those subjects already had one."""

    def __init__(self, subjects: Iterable[str]) -> None:
        self.subjects = sorted(subjects)
        super().__init__(f"subjects already had keys: {', '.join(self.subjects)}")


# The master key of this process: set once at start (`use_master_key`) by the composition root
# (serve, the CLI, the test harness), read by every seal and open.
_MASTER_KEY: list[bytes] = []


def use_master_key(master_key: bytes) -> None:
    if len(master_key) != subject_keys.KEY_BYTES:
        raise subject_keys.SubjectKeyError("a master key is 32 bytes")
    _MASTER_KEY[:] = [master_key]


def has_master_key() -> bool:
    return bool(_MASTER_KEY)


def master_key() -> bytes:
    if not _MASTER_KEY:
        raise RuntimeError("no master key: call key_store.use_master_key at start")
    return _MASTER_KEY[0]


SELECT_ACCOUNT_WRAPPED: Final = "SELECT wrapped_secret FROM account_secrets WHERE account_id = $1"
INSERT_ACCOUNT_WRAPPED: Final = """
INSERT INTO account_secrets (account_id, wrapped_secret) VALUES ($1, $2)
ON CONFLICT (account_id) DO NOTHING
"""
# The first key `serve` checks is the database's: its canary is stored when none is.
INSERT_CANARY: Final = """
INSERT INTO master_key_canary (wrapped) VALUES ($1) ON CONFLICT DO NOTHING RETURNING wrapped
"""
# Read in a statement of its own: one inserted by a process racing this one's INSERT commits
# after that statement's snapshot.
SELECT_CANARY: Final = "SELECT wrapped FROM master_key_canary"
# Locked by a rotation, which re-wraps it.
SELECT_CANARY_FOR_UPDATE: Final = "SELECT wrapped FROM master_key_canary FOR UPDATE"
UPDATE_CANARY: Final = "UPDATE master_key_canary SET wrapped = $1"
SELECT_ANY_WRAPPED: Final = """
(SELECT wrapped_key FROM subject_keys WHERE wrapped_key IS NOT NULL LIMIT 1)
UNION ALL (SELECT wrapped_secret FROM account_secrets LIMIT 1)
LIMIT 1
"""
# A rotation's keys a batch at a time, in subject order: its memory is one batch's, however
# many subjects there are. $1 the last subject of the batch before ('' at first), $2 how many.
SELECT_KEYS_AFTER: Final = """
SELECT subject_id, wrapped_key FROM subject_keys
WHERE subject_id > $1 AND wrapped_key IS NOT NULL
ORDER BY subject_id
LIMIT $2
FOR UPDATE
"""
ROTATE_BATCH: Final = 10_000
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
    """The data key of every subject, made (and stored wrapped) for those without one.
    SubjectErasedError if any subject is erased.

    New subjects (a batch of new leads) take one round trip: a fresh key is offered for every
    subject, and only those that already had one are read back.
    """
    wanted = sorted(set(subjects))
    fresh = {subject: subject_keys.new_data_key() for subject in wanted}
    made = await conn.fetch(
        INSERT_KEYS,
        wanted,
        [account_id] * len(wanted),
        [subject_keys.wrap(master_key, fresh[s]) for s in wanted],
    )
    found = {row["subject_id"]: fresh[row["subject_id"]] for row in made}
    existing = [s for s in wanted if s not in found]
    if not existing:
        return found
    # Made before (or by a concurrent writer first): its key is the one.
    had: dict[str, bytes] = {}
    erased: list[str] = []
    for row in await conn.fetch(SELECT_KEYS_FOR_WRITING, existing):
        wrapped: bytes | None = row["wrapped_key"]
        if wrapped is None:
            erased.append(row["subject_id"])
        else:
            had[row["subject_id"]] = subject_keys.unwrap(master_key, wrapped)
    if erased:
        raise SubjectErasedError(erased)
    return found | had


async def store_new_keys(conn: Connection, account_id: int, wrapped: Mapping[str, bytes]) -> None:
    """Store keys (wrapped) made for subjects that cannot have one yet (leads with ids just
    drawn), so that their events could be sealed before this transaction's turn on the
    connection. SubjectErasedError, or KeyConflictError, when a subject had a key after all:
    the events sealed with the new one must not be stored (the caller rolls back)."""
    wanted = sorted(wrapped)
    if len(wanted) >= COPY_KEYS_FROM:
        if await _copied(conn, account_id, wanted, wrapped):
            return
        had = wanted
    else:
        made = await conn.fetch(
            INSERT_KEYS, wanted, [account_id] * len(wanted), [wrapped[s] for s in wanted]
        )
        if len(made) == len(wanted):
            return
        stored = {row["subject_id"] for row in made}
        had = [s for s in wanted if s not in stored]
    rows = await conn.fetch(SELECT_KEYS_FOR_WRITING, had)
    erased = [row["subject_id"] for row in rows if row["wrapped_key"] is None]
    if erased:
        raise SubjectErasedError(erased)
    raise KeyConflictError([row["subject_id"] for row in rows])


async def _copied(
    conn: Connection, account_id: int, wanted: list[str], wrapped: Mapping[str, bytes]
) -> bool:
    """COPY the new keys in a savepoint; False (nothing stored) if any subject had a row.
    The subjects are new, so a conflict is an error to report, not a row to skip: COPY, which
    cannot skip one, costs a third of `INSERT ... ON CONFLICT DO NOTHING RETURNING` (50,000
    keys: ~0.09 s against ~0.31-0.45 s, on the bulk upload's critical path)."""
    records = [(subject, account_id, wrapped[subject]) for subject in wanted]
    # A savepoint by SQL, not `conn.transaction()`: asyncpg refuses that inside a transaction
    # begun by an explicit BEGIN, as the job's and the writers' are.
    await conn.execute("SAVEPOINT new_subject_keys")
    try:
        await conn.copy_records_to_table("subject_keys", records=records, columns=KEY_COLUMNS)
    except asyncpg.UniqueViolationError:
        await conn.execute("ROLLBACK TO SAVEPOINT new_subject_keys")
        return False
    await conn.execute("RELEASE SAVEPOINT new_subject_keys")
    return True


async def add_lookup(
    conn: Connection, account_id: int, digests: Mapping[str, Iterable[str]]
) -> None:
    """Record digests an erasure request can find these subjects by (ledger/subject_lookup.py)."""
    pairs = sorted({(d, s) for s, found in digests.items() for d in found})
    if pairs:
        await conn.execute(INSERT_LOOKUP, account_id, [d for d, _ in pairs], [s for _, s in pairs])


async def forget_unused(conn: Connection, subjects: Iterable[str]) -> None:
    """Delete the keys stored ahead for subjects that were then never written (leads refused
    after their keys went in), in the same transaction: no key is left without its events."""
    await conn.execute(DELETE_UNUSED_KEYS, sorted(set(subjects)))


async def erase(conn: Connection, subjects: Iterable[str]) -> int:
    """Destroy the subjects' keys (a tombstone row stays): what is sealed with them can never be
    read again, nor can the subjects be written again. Returns how many had a key."""
    names = sorted(set(subjects))
    await conn.execute(DELETE_LOOKUP, names)
    status: str = await conn.execute(ERASE_KEYS, names)
    return int(status.rsplit(" ", 1)[1])


async def subjects_with(conn: Connection, account_id: int, digests: Iterable[str]) -> list[str]:
    """The account's subjects (not erased) recorded under any of the digests."""
    rows = await conn.fetch(SELECT_BY_LOOKUP, account_id, sorted(set(digests)))
    return [row["subject_id"] for row in rows]


async def account_secret(conn: Connection, master_key: bytes, account_id: int) -> bytes:
    """The account's secret for dedupe digests, made on first use."""
    wrapped = await conn.fetchval(SELECT_ACCOUNT_WRAPPED, account_id)
    if wrapped is None:
        fresh = subject_keys.wrap(master_key, subject_keys.new_data_key())
        await conn.execute(INSERT_ACCOUNT_WRAPPED, account_id, fresh)
        wrapped = await conn.fetchval(SELECT_ACCOUNT_WRAPPED, account_id)
    return subject_keys.unwrap(master_key, wrapped)


async def check_master_key(
    conn: Connection, master_key: bytes, *, store_canary: bool = False
) -> None:
    """Raise WrongMasterKeyError unless this master key is the database's, so that a process
    with another key stops before it reads every subject as erased or stores a key no other
    process can open. The database's key is the one its stored keys were wrapped under, and
    its canary's (migration 0018). With `store_canary` (`serve`), the first key checked stores
    the canary: two servers started at once with different keys cannot both come up. A
    command does not store it, so one run from a host without the key (a key file made for
    it) cannot bind a fresh database to a throwaway key."""
    wrapped = await conn.fetchval(SELECT_ANY_WRAPPED)  # keys stored before the canary
    if wrapped is not None:
        _opened(master_key, wrapped)
    stored = None
    if store_canary:
        canary = subject_keys.wrap(master_key, subject_keys.new_data_key())
        stored = await conn.fetchval(INSERT_CANARY, canary)
    stored = stored or await conn.fetchval(SELECT_CANARY)
    if stored is not None:
        _opened(master_key, stored)


def _opened(master_key: bytes, wrapped: bytes) -> None:
    try:
        subject_keys.unwrap(master_key, wrapped)
    except subject_keys.SubjectKeyError:
        raise subject_keys.WrongMasterKeyError(
            f"LEDGER_MASTER_KEY {subject_keys.WRONG_MASTER_KEY}"
        ) from None


async def rotate(
    conn: Connection, old_master: bytes, new_master: bytes, *, batch: int = ROTATE_BATCH
) -> int:
    """Re-wrap every stored key and secret under `new_master`, in the caller's transaction;
    no event changes. Returns how many were re-wrapped."""
    if not conn.is_in_transaction():
        raise RuntimeError("rotate the keys inside one transaction: all or none")
    # The cryptography is per key, in Python; the writes are one statement per batch of keys,
    # not one round trip per subject, and one batch is held at a time.
    rewrapped = 0
    after = ""
    while keys := await conn.fetch(SELECT_KEYS_AFTER, after, batch):
        await conn.execute(
            UPDATE_KEYS,
            [row["subject_id"] for row in keys],
            [_rewrap(old_master, new_master, row["wrapped_key"]) for row in keys],
        )
        rewrapped += len(keys)
        after = keys[-1]["subject_id"]
    wrapped_secrets = await conn.fetch(SELECT_ALL_ACCOUNT_WRAPPED)
    await conn.execute(
        UPDATE_ACCOUNTS_WRAPPED,
        [row["account_id"] for row in wrapped_secrets],
        [_rewrap(old_master, new_master, row["wrapped_secret"]) for row in wrapped_secrets],
    )
    canary = await conn.fetchval(SELECT_CANARY_FOR_UPDATE)
    if canary is not None:
        await conn.execute(UPDATE_CANARY, _rewrap(old_master, new_master, canary))
    return rewrapped + len(wrapped_secrets)


def _rewrap(old_master: bytes, new_master: bytes, wrapped: bytes) -> bytes:
    return subject_keys.wrap(new_master, subject_keys.unwrap(old_master, wrapped))
