"""Write a group of single-lead inserts of one account in one transaction: the leads of the
requests a group gathered (service/account_groups.py), each decided as it would be alone.

The group may span the account's campaigns: each campaign's leads are decided on their own,
under that campaign's lock, all locks taken in id order. The outcome of each lead is exactly
what it would get alone, in arrival order (see `insert_lead_batch`), and each keeps its own
request id, client address and refusal stream.

A lead may come with its request's rate limit: the group counts those hits in one statement
before its transaction (outside it, as rate_limits.take requires), numbered in arrival order,
so each request is answered as if counted alone, and a request over its limit writes nothing.
The same statement draws the group's lead ids, and the transaction's BEGIN takes the campaign
locks: a group's locks are held for its checks and writes alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.service import rate_limits
from lead_ledger.service.dnc import DncBlock
from lead_ledger.service.key_workers import keys_of
from lead_ledger.service.lead_inserts import NewLead, Prepared, insert_lead_groups
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import AccountDigests

DRAW_IDS: Final = "SELECT array(SELECT nextval('lead_ids') FROM generate_series(1, $1))"
# A group's hits ($1-$3, as rate_limits.HIT counts them) and ids for its leads ($4), one round
# trip; both outside the transaction (the window row is every request's, and ids need no lock).
HITS_AND_IDS: Final = f"""
WITH counted AS ({rate_limits.HIT})
SELECT (SELECT hits FROM counted) AS hits,
       array(SELECT nextval('lead_ids') FROM generate_series(1, $4)) AS ids
"""


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
    digests: AccountDigests | None = None,
) -> list[Inserted]:
    """Count the group's rate-limit hits, then insert those within their limits in one
    transaction; each lead's outcome, in order.

    Everything that needs no lock is done before the transaction: the hits and the lead ids in
    one statement, the dedupe keys here while it runs (a group is small), the account's digest
    once per `digests`. The transaction's BEGIN takes the campaigns' locks, so the locks are held
    for the checks and the writes alone.
    """
    # The keys are computed while the hits' statement is on its way to the server: they need
    # no connection, and the group would otherwise wait for one and then the other. Those of a
    # lead over its limit go unused.
    region = group[0].region if group else None  # one account, one region
    counting = asyncio.ensure_future(_count_hits_and_draw_ids(conn, account_id, group))
    try:
        await asyncio.sleep(0)  # lets the statement be sent before the loop is taken
        every_key = keys_of([pending.lead.fields.phone_numbers for pending in group], region)
    finally:
        ids = await counting
    outcomes: dict[int, Inserted] = {}
    by_campaign: dict[int, list[int]] = {}
    for index, pending in enumerate(group):
        if pending.allowed is False:
            outcomes[index] = Inserted(lead_id=None, rate_limited=True)
        else:
            by_campaign.setdefault(pending.campaign_id, []).append(index)
    if by_campaign:
        ordered = sorted(by_campaign)
        leads = {c: [group[i].lead for i in by_campaign[c]] for c in ordered}
        keys = [every_key[i] for c in ordered for i in by_campaign[c]]
        drawn = iter(ids)
        prepared = Prepared({c: [next(drawn) for _ in leads[c]] for c in ordered}, keys)
        digest = None if digests is None else await digests.get(conn, account_id)
        async with write_transaction(conn, campaigns=ordered):
            results = await insert_lead_groups(
                conn,
                account_id=account_id,
                groups=leads,
                region=region,
                digest=digest,
                prepared=prepared,
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


async def _count_hits_and_draw_ids(
    conn: Connection, account_id: int, group: Sequence[Pending]
) -> list[int]:
    """Count the rate-limit hits of the group's leads not counted yet, in arrival order, and
    draw an id for each lead (ascending; those of leads over their limit go unused, as a
    sequence's ids may): one statement for a group of one bucket, the usual case."""
    by_bucket: dict[str, list[Pending]] = {}
    for pending in group:
        if pending.rate_limit is not None and pending.allowed is None:
            by_bucket.setdefault(pending.rate_limit.bucket, []).append(pending)
    ids: list[int] | None = None
    for bucket, counted in by_bucket.items():
        limits = [p.rate_limit.limit for p in counted if p.rate_limit is not None]
        if ids is None:
            row = await conn.fetchrow(HITS_AND_IDS, account_id, bucket, len(limits), len(group))
            if row is None:  # a SELECT without FROM answers one row
                raise RuntimeError("HITS_AND_IDS answered no row")
            ids = row["ids"]
            answers = rate_limits.within(row["hits"], limits)
            await rate_limits.forget_old_windows_now_and_then(conn)
        else:  # another bucket of the same group: its hits alone
            answers = await rate_limits.take_many(conn, account_id, bucket, limits)
        for pending, allowed in zip(counted, answers, strict=True):
            pending.allowed = allowed
    if ids is None:
        ids = await conn.fetchval(DRAW_IDS, len(group))
    return sorted(ids)
