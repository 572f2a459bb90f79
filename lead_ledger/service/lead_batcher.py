"""Group single-lead inserts of one account that arrive together into one transaction
(service/account_groups.py says how and why).

Groups are per account (one region, one tenant) and may span its campaigns: each campaign's
leads are decided on their own, under that campaign's lock, all locks taken in id order. The
outcome of each lead is exactly what it would get alone, in arrival order (see
`insert_lead_batch`), and each keeps its own request id, client address and refusal stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import msgspec

from lead_ledger.service.account_groups import MAX_GROUP, AccountGroups
from lead_ledger.service.dnc import DncBlock
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.service.lead_inserts import NewLead, insert_lead_groups
from lead_ledger.service.transactions import write_transaction


class Inserted(msgspec.Struct, frozen=True, kw_only=True):
    """One lead's outcome: its new id, the live leads it duplicates, or the do-not-call entry
    that keeps it out."""

    lead_id: int | None
    duplicate_of: list[int] = []
    blocked: DncBlock | None = None


@dataclass(frozen=True, slots=True)
class _Pending:
    campaign_id: int
    region: str | None
    lead: NewLead


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
        self._groups: AccountGroups[_Pending, Inserted] = AccountGroups(
            self._write, max_group=max_group
        )

    async def insert(
        self, *, account_id: int, campaign_id: int, region: str | None, lead: NewLead
    ) -> Inserted:
        return await self._groups.submit(account_id, _Pending(campaign_id, region, lead))

    async def close(self) -> None:
        """Let groups being written finish (on shutdown, before the pool closes)."""
        await self._groups.close()

    async def _write(self, account_id: int, group: Sequence[_Pending]) -> list[Inserted]:
        by_campaign: dict[int, list[int]] = {}
        for index, pending in enumerate(group):
            by_campaign.setdefault(pending.campaign_id, []).append(index)
        async with self._pool.acquire() as conn, write_transaction(conn):
            results = await insert_lead_groups(
                conn,
                account_id=account_id,
                groups={c: [group[i].lead for i in ids] for c, ids in by_campaign.items()},
                region=group[0].region,
                key_workers=self._key_workers,
            )
        outcomes: dict[int, Inserted] = {}
        for campaign_id, indexes in by_campaign.items():
            result = results[campaign_id]
            for i, index in enumerate(indexes):
                outcomes[index] = Inserted(
                    lead_id=result.inserted.get(i),
                    duplicate_of=result.duplicates.get(i, []),
                    blocked=result.blocked.get(i),
                )
        return [outcomes[index] for index in range(len(group))]
