"""Write a group of single-lead inserts of one account in one transaction: the leads of the
requests a group gathered (service/account_groups.py), each decided as it would be alone.

The group may span the account's campaigns: each campaign's leads are decided on their own,
under that campaign's lock, all locks taken in id order. The outcome of each lead is exactly
what it would get alone, in arrival order (see `insert_lead_batch`), and each keeps its own
request id, client address and refusal stream.

A lead may come with its request's rate limit: the group counts those hits in one statement
before its transaction (outside it, as rate_limits.take requires), numbered in arrival order,
so each request is answered as if counted alone, and a request over its limit writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.service import rate_limits
from lead_ledger.service.dnc import DncBlock
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.service.lead_inserts import NewLead, insert_lead_groups
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import AccountDigests


class Inserted(msgspec.Struct, frozen=True, kw_only=True):
    """One lead's outcome: its new id, the live leads it duplicates, the do-not-call entry
    that keeps it out, or its request over its rate limit."""

    lead_id: int | None
    duplicate_of: list[int] = []
    blocked: DncBlock | None = None
    rate_limited: bool = False


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The request's bucket and its account's limit per minute (service/rate_limits.py)."""

    bucket: str
    limit: int


@dataclass(slots=True)
class Pending:
    """A lead waiting in a group."""

    campaign_id: int
    region: str | None
    lead: NewLead
    rate_limit: RateLimit | None = None
    # Whether its hit was within the limit, once counted: a group that fails is written again
    # lead by lead (account_groups.py), and a hit must not be counted twice.
    allowed: bool | None = None


async def write_leads(
    conn: Connection,
    account_id: int,
    group: Sequence[Pending],
    key_workers: KeyWorkers | None = None,
    digests: AccountDigests | None = None,
) -> list[Inserted]:
    """Count the group's rate-limit hits, then insert those within their limits in one
    transaction; each lead's outcome, in order. `digests`: the writer's known account digests,
    read before the transaction when not known yet (not inside the campaign locks)."""
    await _count_hits(conn, account_id, group)
    outcomes: dict[int, Inserted] = {}
    by_campaign: dict[int, list[int]] = {}
    for index, pending in enumerate(group):
        if pending.allowed is False:
            outcomes[index] = Inserted(lead_id=None, rate_limited=True)
        else:
            by_campaign.setdefault(pending.campaign_id, []).append(index)
    if by_campaign:
        digest = None if digests is None else await digests.get(conn, account_id)
        async with write_transaction(conn):
            results = await insert_lead_groups(
                conn,
                account_id=account_id,
                groups={c: [group[i].lead for i in ids] for c, ids in by_campaign.items()},
                region=group[0].region,  # one account, one region
                key_workers=key_workers,
                digest=digest,
            )
        for campaign_id, indexes in by_campaign.items():
            result = results[campaign_id]
            for i, index in enumerate(indexes):
                outcomes[index] = Inserted(
                    lead_id=result.inserted.get(i),
                    duplicate_of=result.duplicates.get(i, []),
                    blocked=result.blocked.get(i),
                )
    return [outcomes[index] for index in range(len(group))]


async def _count_hits(conn: Connection, account_id: int, group: Sequence[Pending]) -> None:
    """Count the rate-limit hits of the group's leads not counted yet, one statement a bucket,
    in arrival order."""
    by_bucket: dict[str, list[Pending]] = {}
    for pending in group:
        if pending.rate_limit is not None and pending.allowed is None:
            by_bucket.setdefault(pending.rate_limit.bucket, []).append(pending)
    for bucket, counted in by_bucket.items():
        limits = [p.rate_limit.limit for p in counted if p.rate_limit is not None]
        allowed = await rate_limits.take_many(conn, account_id, bucket, limits)
        for pending, within in zip(counted, allowed, strict=True):
            pending.allowed = within
