"""Campaign locks a transaction finds too few once it holds them: it rolls back and runs again.

Every campaign of an account, with none created until the transaction ends. An account-wide
do-not-call entry must be seen by every lead write it could block; each takes its campaign's
lock before its checks, so the entry's write locks every campaign of the account. A campaign
created while the entry is written would escape a list read once, so the list is read again
under the account's lock, which campaign creation holds until it commits (service/accounts.py):
from then until this transaction ends, no campaign can be added.

The locks are taken campaigns first, then the account, the order every lead writer that takes
both follows (AddCampaignData's `action`, Ozonetel's bulk upload, jobs). A campaign found new
under the account's lock cannot be locked after it without risking a deadlock with such a
writer, so the transaction is rolled back and run again with it (`LocksOutgrown`); campaign
creation is an administrator's act, so a second run is rare and a third rarer still. An
erasure does the same when a lead of the person appears, under its locks, in a campaign it did
not lock (service/erasures.py), and Vicidial's add_lead when a list its duplicate search must
cover was created after it read the lists (service/vicidial_add_lead.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.locks import lock_campaigns
from lead_ledger.service.accounts import lock_account

T = TypeVar("T")

SELECT_CAMPAIGN_IDS: Final = "SELECT campaign_id FROM campaigns WHERE account_id = $1"


class LocksOutgrown(Exception):  # noqa: N818 - a signal to run again, not a failure
    """What the transaction read under its locks needs a lock it did not take (a campaign
    created after the campaigns were read and locked): roll back and run again."""


async def lock_every_campaign(conn: Connection, account_id: int) -> list[int]:
    """Lock every campaign of the account and then the account itself, in the caller's
    transaction; their ids. LocksOutgrown when one appeared between the read and the
    account's lock: the caller rolls back and calls again (`retried_until_locked`)."""
    read = [row["campaign_id"] for row in await conn.fetch(SELECT_CAMPAIGN_IDS, account_id)]
    locked = await lock_campaigns(conn, read)
    await lock_account(conn, account_id)
    now = await conn.fetch(SELECT_CAMPAIGN_IDS, account_id)
    if not {row["campaign_id"] for row in now} <= set(locked):
        raise LocksOutgrown
    return locked


async def retried_until_locked(conn: Connection, write: Callable[[], Awaitable[T]]) -> T:
    """Run `write`, a whole write transaction on `conn`, again for as long as it raises
    LocksOutgrown (each run rolled back by the exception). Never inside a transaction already
    open: `write_transaction` would join it, so nothing would roll back, and the run again would
    take its locks after those the last run left held."""
    if conn.is_in_transaction():
        raise RuntimeError("a write that may run again needs a transaction of its own")
    while True:
        try:
            return await write()
        except LocksOutgrown:
            continue
