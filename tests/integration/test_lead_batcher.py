"""Grouped inserts: each lead's outcome is what it would get alone, in arrival order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import msgspec
import pytest

from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import LeadFields
from lead_ledger.ledger.lead import LeadError
from lead_ledger.ledger.store import read_stream
from lead_ledger.service.account_groups import AccountGroups
from lead_ledger.service.lead_batcher import Inserted, Pending, RateLimit, write_leads
from lead_ledger.service.lead_inserts import NewLead
from lead_ledger.service.writer import Context
from tests.factories import make_account, make_campaign


class _Groups:
    """Leads already checked, grouped per account and written by `write_leads` on a connection
    of their own: what service/ozonetel_adds.py does after its checks."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        async def write(account_id: int, group: Sequence[Pending]) -> list[Inserted]:
            async with pool.acquire() as conn:
                return await write_leads(conn, account_id, group)

        self._groups: AccountGroups[int, Pending, Inserted] = AccountGroups(write)

    async def insert(
        self,
        *,
        account_id: int,
        campaign_id: int,
        region: str | None,
        lead: NewLead,
        rate_limit: RateLimit | None = None,
    ) -> Inserted:
        pending = Pending(campaign_id, region, lead, rate_limit)
        return await self._groups.submit(account_id, pending)

    async def close(self) -> None:
        await self._groups.close()


def _lead(phone: str, request: str, *, check: bool = True) -> NewLead:
    ctx = Context(actor=Actor(dialect="ozonetel"), request_id=request, client_address="10.0.0.9")
    return NewLead(
        fields=LeadFields(phone_numbers=[phone]),
        ctx=ctx,
        check_duplicates=check,
        rejections_stream=f"request-{request}",
    )


async def _insert_at_once(
    pool: asyncpg.Pool, phones: list[str], prefix: str, rate_limit: RateLimit | None = None
) -> tuple[int, list[Inserted | BaseException]]:
    """Leads of a new account's campaign through one batcher, all submitted at once; the
    account and each lead's outcome or error, in submission order."""
    account = await make_account(pool)
    campaign = await make_campaign(pool, account)
    batcher = _Groups(pool)
    results = await asyncio.gather(
        *(
            batcher.insert(
                account_id=account,
                campaign_id=campaign,
                region="IN",
                lead=_lead(phone, f"{prefix}{n}"),
                rate_limit=rate_limit,
            )
            for n, phone in enumerate(phones)
        ),
        return_exceptions=True,
    )
    await batcher.close()
    return account, results


def _all_answered(results: list[Inserted | BaseException]) -> list[Inserted]:
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    return [r for r in results if not isinstance(r, BaseException)]


async def test_concurrent_duplicates_one_wins_each_refusal_on_its_own_stream(
    pool: asyncpg.Pool,
) -> None:
    """20 requests for one number at once: one lead, 19 refusals, each keeps its request id."""
    spellings = ["+91 98765 43210" if n % 2 else "09876543210" for n in range(20)]
    _, results = await _insert_at_once(pool, spellings, "r")
    outcomes = _all_answered(results)
    winners = [o.lead_id for o in outcomes if o.lead_id is not None]
    assert len(winners) == 1
    assert all(o.duplicate_of == winners for o in outcomes if o.lead_id is None)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM leads") == 1
        requests = await conn.fetch(
            "SELECT stream_id, metadata->>'request_id' AS request_id, data FROM events "
            "WHERE stream_id LIKE 'request-%' OR stream_id LIKE 'lead-%' ORDER BY position"
        )
    assert len(requests) == 20
    assert {r["request_id"] for r in requests} == {f"r{n}" for n in range(20)}
    refusals = [r for r in requests if r["stream_id"].startswith("request-")]
    assert all(r["stream_id"] == f"request-{r['request_id']}" for r in refusals)
    assert {msgspec.json.decode(r["data"])["row_number"] for r in refusals} == {1}


async def test_unchecked_leads_are_inserted_and_count_for_later_checks(pool: asyncpg.Pool) -> None:
    """A lead without checkDuplicate is added; a later checking lead sees it as a duplicate."""
    account = await make_account(pool)
    campaign = await make_campaign(pool, account)
    batcher = _Groups(pool)
    first = batcher.insert(
        account_id=account,
        campaign_id=campaign,
        region="IN",
        lead=_lead("9000000001", "a", check=False),
    )
    second = batcher.insert(
        account_id=account,
        campaign_id=campaign,
        region="IN",
        lead=_lead("9000000001", "b", check=False),
    )
    third = batcher.insert(
        account_id=account, campaign_id=campaign, region="IN", lead=_lead("9000000001", "c")
    )
    a, b, c = await asyncio.gather(first, second, third)
    await batcher.close()
    assert a.lead_id is not None
    assert b.lead_id is not None
    assert c.lead_id is None
    assert c.duplicate_of == [a.lead_id]  # the first lead holding the key, in arrival order


async def test_a_failing_lead_fails_alone(pool: asyncpg.Pool) -> None:
    """One undialable lead in a group: it gets the error, the others are inserted."""
    _, results = await _insert_at_once(pool, ["9000000011", "--", "9000000012"], "x")
    assert isinstance(results[1], LeadError)
    assert all(
        not isinstance(r, BaseException) and r.lead_id is not None for r in (results[0], results[2])
    )
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM leads") == 2
        assert await read_stream(conn, "request-x1") == []


async def test_groups_form_under_load(pool: asyncpg.Pool) -> None:
    """100 concurrent inserts to one campaign take far fewer transactions than requests."""
    _, results = await _insert_at_once(pool, [f"+9198{n:08d}" for n in range(100)], "g")
    outcomes = _all_answered(results)
    assert all(o.lead_id is not None for o in outcomes)
    async with pool.acquire() as conn:
        transactions = await conn.fetchval(
            "SELECT count(DISTINCT transaction_id) FROM events WHERE stream_id LIKE 'lead-%'"
        )
    assert transactions <= 10


@pytest.mark.parametrize("size", [1, 3])
async def test_an_idle_campaign_writes_at_once(pool: asyncpg.Pool, size: int) -> None:
    """Sequential requests each get their own transaction without waiting for company."""
    account = await make_account(pool)
    campaign = await make_campaign(pool, account)
    batcher = _Groups(pool)
    for n in range(size):
        outcome = await asyncio.wait_for(
            batcher.insert(
                account_id=account,
                campaign_id=campaign,
                region="IN",
                lead=_lead(f"+9197{n:08d}", f"s{n}"),
            ),
            timeout=5,
        )
        assert outcome.lead_id is not None
    await batcher.close()


async def test_a_group_spans_the_campaigns_of_an_account(pool: asyncpg.Pool) -> None:
    """Concurrent inserts to 3 campaigns of one account share transactions; each campaign
    decides its own duplicates."""
    account = await make_account(pool)
    campaigns = [await make_campaign(pool, account, f"c{n}") for n in range(3)]
    batcher = _Groups(pool)
    outcomes = await asyncio.gather(
        *(
            batcher.insert(
                account_id=account,
                campaign_id=campaigns[n % 3],
                region="IN",
                lead=_lead("9000000077", f"m{n}"),
            )
            for n in range(30)
        )
    )
    await batcher.close()
    assert sum(o.lead_id is not None for o in outcomes) == 3  # one per campaign
    async with pool.acquire() as conn:
        per_campaign = await conn.fetch("SELECT campaign_id, count(*) FROM leads GROUP BY 1")
        transactions = await conn.fetchval(
            "SELECT count(DISTINCT transaction_id) FROM events WHERE stream_id LIKE 'lead-%'"
        )
    assert sorted(r["count"] for r in per_campaign) == [1, 1, 1]
    assert transactions < 3


async def test_rate_limit_hits_are_counted_with_the_group_in_arrival_order(
    pool: asyncpg.Pool,
) -> None:
    """Twelve leads at once against a limit of 5: the first five are inserted, the other seven
    are rate limited and write nothing, and the window counts all twelve."""
    phones = [f"+9197{n:08d}" for n in range(12)]
    account, results = await _insert_at_once(pool, phones, "l", RateLimit("ozonetel_add", 5))
    outcomes = _all_answered(results)
    assert [o.rate_limited for o in outcomes] == [False] * 5 + [True] * 7
    assert all(o.lead_id is not None for o in outcomes[:5])
    assert all(o.lead_id is None and not o.duplicate_of for o in outcomes[5:])
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM leads") == 5
        assert (
            await conn.fetchval("SELECT count(*) FROM events WHERE stream_id LIKE 'request-%'") == 0
        )
        hits = await conn.fetchval(
            "SELECT hits FROM rate_limit_windows WHERE account_id = $1 AND bucket = 'ozonetel_add'",
            account,
        )
    assert hits == 12


async def test_a_failing_group_counts_each_hit_once(pool: asyncpg.Pool) -> None:
    """A group that fails is written again lead by lead: each lead's hit is counted once."""
    phones = ["9000000021", "--", "9000000022", "9000000023"]
    _, results = await _insert_at_once(pool, phones, "f", RateLimit("ozonetel_add", 3))
    assert isinstance(results[1], LeadError)
    # Hits 1, 2 and 3 are within the limit, the fourth is not: counted once, before the failure.
    rate_limited = [r.rate_limited for r in results if not isinstance(r, BaseException)]
    assert rate_limited == [False, False, True]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM leads") == 2
        assert await conn.fetchval("SELECT hits FROM rate_limit_windows") == 4
