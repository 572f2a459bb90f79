"""Advisory locks: the coordination points that let any number of processes share one database.

Writers to one campaign are serialised by a transaction-scoped advisory lock on the campaign,
taken before anything is read, so a duplicate check or a safe-delete comparison sees every
committed lead of the campaign and no other writer can add one until this transaction ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from lead_ledger.ledger.connection import Connection

# Advisory lock keys are one bigint space shared by every application on the server; the upper
# 32 bits name what is locked, the lower the id. Every namespace of lead-ledger is listed here,
# so two kinds of lock can never share a key.
_MIGRATION_KEY: Final = 0x4C4C_0000 << 32
_CAMPAIGN_NAMESPACE: Final = 0x4C4C_0001
_ACCOUNT_NAMESPACE: Final = 0x4C4C_0002
# Account names and usernames are unique across accounts, so their checks share one key.
GLOBAL_NAMES_KEY: Final = 0x4C4C_0003 << 32
_PROJECTIONS_NAMESPACE: Final = 0x4C4C_0004 << 32
# Writers hold it shared for their whole transaction; a projection swap holds it alone.
WRITE_GATE_KEY: Final = _PROJECTIONS_NAMESPACE | 0
# Held (session-scoped) for a whole rebuild or verify: two of them would share shadow tables.
REBUILD_KEY: Final = _PROJECTIONS_NAMESPACE | 1
# Held while the database roles are created and objects change owner (ledger/roles.py).
_ROLES_KEY: Final = 0x4C4C_0005 << 32
# An account's stored export files: an export storing its file and an erasure removing the
# account's files take it (docs/erasure.md, "Export files").
_EXPORT_FILES_NAMESPACE: Final = 0x4C4C_0006
# An account's exports being queued: each counts the account's exports in progress under it.
_EXPORT_QUEUE_NAMESPACE: Final = 0x4C4C_0007
# A claimed job's worker is alive: held (session-scoped) by the connection that claimed it, from
# the claim to the job's end, so a job whose worker died is claimable at once, without waiting
# for its lease. Keyed by the low 32 bits of the job id, in SQL (service/jobs/lifecycle.py): ids
# 2^32 apart share a key, and a dead worker's job then waits for its lease, as before.
JOB_WORKER_NAMESPACE: Final = 0x4C4C_0008
_ID_LIMIT: Final = 1 << 32

LOCK_XACT: Final = "SELECT pg_advisory_xact_lock($1)"
LOCK_SESSION: Final = "SELECT pg_advisory_lock($1)"
UNLOCK_SESSION: Final = "SELECT pg_advisory_unlock($1)"


def _id_key(namespace: int, kind: str, value: int) -> int:
    """The lock of one id in a namespace: the namespace in the high 32 bits, the id below."""
    if not 0 <= value < _ID_LIMIT:
        raise ValueError(f"{kind} id {value} is outside the lockable range")
    return (namespace << 32) | value


def campaign_lock_key(campaign_id: int) -> int:
    return _id_key(_CAMPAIGN_NAMESPACE, "campaign", campaign_id)


def account_lock_key(account_id: int) -> int:
    return _id_key(_ACCOUNT_NAMESPACE, "account", account_id)


def export_files_lock_key(account_id: int) -> int:
    return _id_key(_EXPORT_FILES_NAMESPACE, "account", account_id)


def export_queue_lock_key(account_id: int) -> int:
    return _id_key(_EXPORT_QUEUE_NAMESPACE, "account", account_id)


def migration_lock_key() -> int:
    return _MIGRATION_KEY


def roles_lock_key() -> int:
    return _ROLES_KEY


async def lock_campaigns(conn: Connection, campaign_ids: Iterable[int]) -> list[int]:
    """Lock campaigns for the rest of the transaction, in ascending id order.

    Ascending order is what makes several multi-campaign writers deadlock-free: all of them
    wait on the lowest id first. Returns the ids locked, in the order they were taken.
    """
    if not conn.is_in_transaction():
        raise RuntimeError("campaign locks are transaction-scoped; open a transaction first")
    ordered = sorted(set(campaign_ids))
    # One statement per lock, pipelined, so their order is the order we give.
    await conn.executemany(LOCK_XACT, [(campaign_lock_key(cid),) for cid in ordered])
    return ordered
