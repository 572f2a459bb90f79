"""Group single-lead inserts of one account that arrive together into one transaction.

Writers to a campaign are serialised by its lock, so under load single-lead requests queue up
behind it, each about to pay the same round trips (begin, lock, duplicate check, append,
projections, commit, flush). Here the first request for a campaign writes at once; requests
that arrive while it is being written wait, and the next transaction takes all of them. An idle
campaign adds no delay; a busy one pays one transaction per group instead of one per request.
Groups are per account (one region, one tenant) and may span its campaigns: each campaign's
leads are decided on their own, under that campaign's lock, all locks taken in id order.

The outcome of each lead is exactly what it would get alone, in arrival order (see
`insert_lead_batch`), and each keeps its own request id, client address and refusal stream.
If a group's transaction fails, its leads are retried one by one, so one bad lead fails alone.
Per process: processes still coordinate through the campaign lock as before.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

import asyncpg
import msgspec

from lead_ledger.service.dnc import DncBlock
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.service.lead_inserts import NewLead, insert_lead_groups
from lead_ledger.service.transactions import write_transaction

MAX_GROUP: Final = 64


class Inserted(msgspec.Struct, frozen=True, kw_only=True):
    """One lead's outcome: its new id, the live leads it duplicates, or the do-not-call entry
    that keeps it out."""

    lead_id: int | None
    duplicate_of: list[int] = []
    blocked: DncBlock | None = None


@dataclass(slots=True)
class _Waiting:
    campaign_id: int
    region: str | None
    lead: NewLead
    future: asyncio.Future[Inserted] = field(repr=False)


class LeadInsertBatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_group: int = MAX_GROUP,
        key_workers: KeyWorkers | None = None,
    ) -> None:
        self._pool = pool
        self._key_workers = key_workers
        self._max_group = max_group
        self._waiting: dict[int, list[_Waiting]] = {}
        self._writing: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def insert(
        self, *, account_id: int, campaign_id: int, region: str | None, lead: NewLead
    ) -> Inserted:
        future: asyncio.Future[Inserted] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(account_id, []).append(_Waiting(campaign_id, region, lead, future))
        if account_id not in self._writing:
            self._writing.add(account_id)
            task = asyncio.create_task(self._drain(account_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Shielded: a caller that goes away does not cancel the group its lead is part of.
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Let groups being written finish (on shutdown, before the pool closes)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _drain(self, account_id: int) -> None:
        try:
            while group := self._take(account_id):
                await self._write(account_id, group)
        finally:
            # No await between the last empty _take and here: nothing can slip in unserved.
            self._writing.discard(account_id)

    def _take(self, account_id: int) -> list[_Waiting]:
        waiting = self._waiting.get(account_id, [])
        group, rest = waiting[: self._max_group], waiting[self._max_group :]
        if rest:
            self._waiting[account_id] = rest
        else:
            self._waiting.pop(account_id, None)
        return group

    async def _write(self, account_id: int, group: list[_Waiting]) -> None:
        by_campaign: dict[int, list[_Waiting]] = {}
        for waiting in group:
            by_campaign.setdefault(waiting.campaign_id, []).append(waiting)
        try:
            async with self._pool.acquire() as conn, write_transaction(conn):
                results = await insert_lead_groups(
                    conn,
                    account_id=account_id,
                    groups={c: [w.lead for w in ws] for c, ws in by_campaign.items()},
                    region=group[0].region,
                    key_workers=self._key_workers,
                )
        except Exception as error:  # noqa: BLE001 - handed to the waiting request(s)
            if len(group) == 1:
                _settle(group[0].future, error=error)
                return
            for waiting in group:  # isolate the lead that failed
                await self._write(account_id, [waiting])
            return
        for campaign_id, members in by_campaign.items():
            result = results[campaign_id]
            for i, waiting in enumerate(members):
                outcome = Inserted(
                    lead_id=result.inserted.get(i),
                    duplicate_of=result.duplicates.get(i, []),
                    blocked=result.blocked.get(i),
                )
                _settle(waiting.future, outcome)


def _settle(
    future: asyncio.Future[Inserted],
    result: Inserted | None = None,
    *,
    error: BaseException | None = None,
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    elif result is not None:
        future.set_result(result)
