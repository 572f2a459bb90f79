"""AddCampaignData (seed 002): the entry point, and the groups that plain adds are written in.

Under load, single-number requests of one API key arrive together. Each one alone would pay a
read of its context, a rate-limit hit and a transaction of its own. Here the requests of a key
that arrive while its previous group is being written wait and go together
(service/account_groups.py; one key is one account's): one statement reads every request's
context, the vendor's checks run on each in arrival order, the hits of those that pass are
counted in one statement and they are written in one transaction (service/lead_batcher.py).
Each request gets exactly the answer it would get alone; the first request of an idle key is
written at once. A request that also starts or stops its campaign runs alone
(`ozonetel.add_and_act`): the action takes the account's lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from lead_ledger.ledger.credentials import key_digest
from lead_ledger.service.account_groups import MAX_GROUP, AccountGroups
from lead_ledger.service.lead_batcher import Inserted, Pending, RateLimit, write_leads
from lead_ledger.service.ozonetel import (
    BUCKET,
    Accepted,
    AddCampaignData,
    Added,
    AlreadyExists,
    Outcome,
    Refusal,
    acts_on_campaign,
    add_and_act,
    check,
    read_contexts,
)
from lead_ledger.service.writer import AccountDigests, Origin


@dataclass(slots=True)
class _Request:
    body: AddCampaignData
    now: datetime
    origin: Origin
    # Its lead once checked; kept so that a group written again request by request (after a
    # failure) does not count the request's rate-limit hit twice.
    pending: Pending | None = None


class AddCampaignDataGroups:
    """The app's plain AddCampaignData adds, checked and written in groups per API key."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_group: int = MAX_GROUP,
    ) -> None:
        self._pool = pool
        self._groups: AccountGroups[str, _Request, Outcome] = AccountGroups(
            self._write, max_group=max_group
        )
        self._digests = AccountDigests()

    async def add(
        self, *, api_key: str | None, body: AddCampaignData, now: datetime, origin: Origin
    ) -> Outcome:
        """Run the vendor's checks in order, then add the number and apply `action`. A missing
        key (None) is NO_API_KEY; an empty one matches no user (INVALID_USER)."""
        if api_key is None:
            return Refusal.NO_API_KEY
        digest = key_digest(api_key)
        if acts_on_campaign(body):
            async with self._pool.acquire() as conn:
                return await add_and_act(conn, digest, body, now, origin)
        return await self._groups.submit(digest, _Request(body, now, origin))

    async def close(self) -> None:
        """Stop the groups still being written (on shutdown, before the pool closes): they
        belong to requests the server cut (service/account_groups.py)."""
        await self._groups.close()

    async def _write(self, digest: str, requests: Sequence[_Request]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        written: list[tuple[int, Accepted, Pending]] = []
        async with self._pool.acquire() as conn:
            contexts = await read_contexts(conn, digest, [r.body for r in requests])
            for index, (request, row) in enumerate(zip(requests, contexts, strict=True)):
                checked = check(row, digest, request.body, request.now, request.origin)
                if isinstance(checked, Refusal):
                    outcomes[index] = checked
                    continue
                request.pending = _pending(checked, request.pending)
                written.append((index, checked, request.pending))
            if written:
                account_id: int = written[0][1].row["account_id"]  # one key, one account
                pendings = [pending for _, _, pending in written]
                inserted = await write_leads(conn, account_id, pendings, self._digests)
                for (index, accepted, _), result in zip(written, inserted, strict=True):
                    outcomes[index] = _outcome(accepted, result)
        return [outcomes[index] for index in range(len(requests))]


def _pending(accepted: Accepted, before: Pending | None) -> Pending:
    row = accepted.row
    return Pending(
        campaign_id=row["campaign_id"],
        region=row["default_region"],
        lead=accepted.lead,
        rate_limit=RateLimit(BUCKET, accepted.rate_limit),
        allowed=None if before is None else before.allowed,
    )


def _outcome(accepted: Accepted, inserted: Inserted) -> Outcome:
    if inserted.rate_limited:
        return Refusal.RATE_LIMITED
    if inserted.blocked is not None:
        return Refusal.DND_NUMBER
    if inserted.lead_id is None:
        return AlreadyExists()
    return Added(accepted.row["campaign_name"])
