"""A write's do-not-call and duplicate checks: a write to one campaign reads the registry and
the numbers' holders in one statement, a write to several reads them apart, and each lead gets
the same answer either way."""

from __future__ import annotations

import asyncpg
import msgspec

from lead_ledger.ledger.events import LeadFields, LeadRejected
from lead_ledger.ledger.opening import open_pairs, shown_records
from lead_ledger.ledger.store import read_stream
from lead_ledger.service import dnc
from lead_ledger.service.lead_inserts import InsertResult, NewLead, insert_lead_groups
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context
from tests.factories import NATIVE, make_account, make_campaign
from tests.support import logged_statements

HELD_TWICE, BLOCKED, FREE = "9876500001", "9876500002", "9876500003"


def _lead(phone: str, *, check: bool = True) -> NewLead:
    return NewLead(
        fields=LeadFields(phone_numbers=[phone]),
        ctx=NATIVE,
        check_duplicates=check,
        rejections_stream="request-checks",
    )


async def _write(
    pool: asyncpg.Pool, account_id: int, groups: dict[int, list[NewLead]], statements: list[str]
) -> dict[int, InsertResult]:
    async with pool.acquire() as conn:
        with logged_statements(conn) as logged:
            async with write_transaction(conn):
                result = await insert_lead_groups(conn, account_id=account_id, groups=groups)
        statements.extend(logged)
        return result


async def test_checks_read_together_answer_as_checks_read_apart(pool: asyncpg.Pool) -> None:
    """Each of two campaigns holds one number twice and a blocked one: a duplicate names both
    holders in id order, a blocked number is refused as blocked though held, a free number goes
    in and its second lead duplicates it; alone (one statement) and beside another campaign
    (read apart) alike."""
    account_id = await make_account(pool)
    alone = await make_campaign(pool, account_id, "alone")
    beside = await make_campaign(pool, account_id, "beside")
    other = await make_campaign(pool, account_id, "other")
    unchecked = [_lead(HELD_TWICE, check=False), _lead(HELD_TWICE, check=False)]
    seeded = await _write(
        pool, account_id, {alone: [*unchecked, _lead(BLOCKED)], beside: [*unchecked]}, []
    )
    await _write(pool, account_id, {beside: [_lead(BLOCKED)]}, [])
    async with pool.acquire() as conn:
        await dnc.add_entries(conn, NATIVE, account_id, [dnc.NewDncEntry(phone=BLOCKED)])
    checked = [_lead(HELD_TWICE), _lead(BLOCKED), _lead(FREE), _lead(FREE)]

    together: list[str] = []
    one = (await _write(pool, account_id, {alone: checked}, together))[alone]
    apart: list[str] = []
    two = await _write(pool, account_id, {beside: checked, other: [_lead(FREE)]}, apart)

    assert [("FROM dnc" in s, "FROM contacts" in s) for s in together if "FROM dnc" in s] == [
        (True, True)
    ]
    assert [("FROM dnc" in s, "FROM contacts" in s) for s in apart if "FROM dnc" in s] == [
        (True, False)
    ]
    for campaign_id, result in ((alone, one), (beside, two[beside])):
        holders = [seeded[campaign_id].inserted[i] for i in (0, 1)]
        assert result.duplicates[0] == holders
        assert result.blocked.keys() == {1}
        assert list(result.inserted) == [2]
        assert result.duplicates[3] == [result.inserted[2]]
        assert result.duplicates.keys() == {0, 3}
    assert list(two[other].inserted) == [0]


async def test_a_request_id_sent_again_is_sealed_with_its_stored_key(pool: asyncpg.Pool) -> None:
    """A refusal on the stream of a request id used before (a client that sends its id again):
    its subject already has a key, so the write that stores keys with the events appends
    nothing, nor the rows of the new lead beside it, and the refusal is sealed again with the
    stored key; both refusals open, and the new lead is written once."""
    account_id = await make_account(pool)
    campaign_id = await make_campaign(pool, account_id)
    await _write(pool, account_id, {campaign_id: [_lead(HELD_TWICE, check=False)]}, [])
    ctx = Context(actor=NATIVE.actor, request_id="again", client_address="10.1.2.3")
    sent = NewLead(
        fields=LeadFields(phone_numbers=[HELD_TWICE]),
        ctx=ctx,
        check_duplicates=True,
        rejections_stream="request-again",
    )
    first: list[str] = []
    await _write(pool, account_id, {campaign_id: [sent]}, first)
    again: list[str] = []
    beside = msgspec.structs.replace(sent, fields=LeadFields(phone_numbers=[FREE]))
    result = await _write(pool, account_id, {campaign_id: [sent, beside]}, again)
    assert list(result[campaign_id].inserted) == [1]
    # The first write stored the key with the events; the second tried, then read the key.
    assert sum("INSERT INTO subject_keys" in s for s in first) == 1
    keyed = [s for s in again if "subject_keys" in s or "INSERT INTO events" in s]
    assert [("INSERT INTO events" in s, "subject_keys" in s) for s in keyed][:3] == [
        (True, True),  # the keys and the events (and the new lead's rows): nothing appended
        (False, True),  # the keys offered again: none new
        (False, True),  # the stored key read
    ]
    assert "INSERT INTO public.leads" in keyed[0]
    # The new lead's rows, then, by a statement of their own after the events.
    projecting = [s for s in again if "INSERT INTO public.leads" in s]
    assert ["INSERT INTO events" in s for s in projecting] == [True, False]
    async with pool.acquire() as conn:
        stored = await read_stream(conn, "request-again")
        opened = await open_pairs(conn, stored)
        shown = await shown_records(conn, stored)
    assert [type(event).__name__ for _, event in opened] == ["LeadRejected", "LeadRejected"]
    assert all(
        isinstance(e, LeadRejected) and e.row == {"phone_numbers": HELD_TWICE} for _, e in opened
    )
    assert [msgspec.json.decode(r.metadata)["client_address"] for r in shown] == ["10.1.2.3"] * 2
    lead_id = result[campaign_id].inserted[1]
    assert await pool.fetchval("SELECT count(*) FROM leads WHERE lead_id = $1", lead_id) == 1
    assert await pool.fetchval("SELECT count(*) FROM contacts WHERE lead_id = $1", lead_id) == 1
