"""Lead commands through the real store: inline projections, duplicates, archive round trips."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import pytest

from lead_ledger.ledger import store
from lead_ledger.ledger.envelope import StreamAppend
from lead_ledger.ledger.errors import ConcurrencyError
from lead_ledger.ledger.events import LeadFields, LeadInserted, LeadReassigned, LeadUpdated
from lead_ledger.ledger.lead import LeadError
from lead_ledger.ledger.opening import open_pairs
from lead_ledger.ledger.store import read_stream
from lead_ledger.service import dnc, lead_inserts, writer
from lead_ledger.service.lead_inserts import InsertResult, NewLead, insert_lead_batch, insert_leads
from lead_ledger.service.leads import (
    archive_leads,
    dearchive_leads,
    delete_leads,
    update_leads,
)
from lead_ledger.service.phone_keys import CHUNK_LEADS
from tests.factories import NATIVE, make_account, make_campaign


async def _insert(
    pool: asyncpg.Pool, account: int, campaign: int, *rows: LeadFields, check: bool = True
) -> dict[int, int]:
    async with pool.acquire() as conn, conn.transaction():
        result = await insert_leads(
            conn,
            NATIVE,
            account_id=account,
            campaign_id=campaign,
            rows=list(rows),
            check_duplicates=check,
            rejections_stream="request-test",
        )
    return result.inserted


async def test_e164_spellings_of_one_number_are_one_contact(pool: asyncpg.Pool) -> None:
    """With region IN, four spellings of one number: the first is inserted, the rest refused."""
    account = await make_account(pool)
    campaign = await make_campaign(pool, account)
    spellings = ["+919876543210", "919876543210", "09876543210", "98765 43210"]
    inserted = await _insert(
        pool, account, campaign, *(LeadFields(phone_numbers=[p]) for p in spellings)
    )
    assert list(inserted) == [0]
    async with pool.acquire() as conn:
        contacts = await conn.fetch("SELECT kind, value FROM contacts")
        refusals = await read_stream(conn, "request-test")
        lead = await conn.fetchrow("SELECT * FROM leads")
    assert [(r["kind"], r["value"]) for r in contacts] == [("phone", "+919876543210")]
    assert len(refusals) == 3
    assert [msgspec.json.decode(r.data)["row_number"] for r in refusals] == [2, 3, 4]
    assert lead is not None
    assert lead["dedupe_keys"] == ["+919876543210"]
    assert lead["version"] == 1
    # A different campaign is a different contact space.
    other = await make_campaign(pool, account, "retention")
    assert list(await _insert(pool, account, other, LeadFields(phone_numbers=spellings[1:2]))) == [
        0
    ]


async def test_update_writes_only_changes_and_reindexes_contacts(pool: asyncpg.Pool) -> None:
    """A patch yields LeadUpdated with changed fields only; agent changes are reassignments."""
    account = await make_account(pool)
    campaign = await make_campaign(pool, account)
    lead_id = (
        await _insert(
            pool,
            account,
            campaign,
            LeadFields(phone_numbers=["9876543210"], name="Asha", crm={"customer:id": "C1"}),
        )
    )[0]
    expires = datetime(2027, 1, 1, tzinfo=UTC)
    async with pool.acquire() as conn, conn.transaction():
        written = await update_leads(
            conn,
            NATIVE,
            account_id=account,
            patches={
                lead_id: {
                    "name": "Asha",  # unchanged: not in the diff
                    "city": "Pune",
                    "crm": {"customer:tier": "gold"},
                    "phone_numbers": ["9123456780"],
                    "agent": "agent-7",
                    "expires_at": expires,
                }
            },
        )
    events = written.written[lead_id]
    assert [type(e) for e in events] == [LeadUpdated, LeadReassigned]
    update = events[0]
    assert isinstance(update, LeadUpdated)
    assert {c.field for c in update.changes} == {"city", "crm", "phone_numbers", "expires_at"}
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM leads WHERE lead_id = $1", lead_id)
        contacts = await conn.fetch(
            "SELECT kind, value FROM contacts WHERE lead_id = $1 ORDER BY kind, value", lead_id
        )
    assert row is not None
    assert (row["city"], row["agent"], row["version"], row["expires_at"]) == (
        "Pune",
        "agent-7",
        3,
        expires,
    )
    assert msgspec.json.decode(row["crm"]) == {"customer:id": "C1", "customer:tier": "gold"}
    assert [(r["kind"], r["value"]) for r in contacts] == [
        ("crm:customer:id", "C1"),
        ("crm:customer:tier", "gold"),
        ("phone", "+919123456780"),
    ]


async def test_lead_without_a_phone_is_refused(pool: asyncpg.Pool) -> None:
    """The domain keeps every lead dialable."""
    account = await make_account(pool)
    campaign = await make_campaign(pool, account)
    with pytest.raises(LeadError, match="phone"):
        await _insert(pool, account, campaign, LeadFields(phone_numbers=[" "]))


async def test_archive_refuses_to_delete_a_lead_changed_after_archiving(
    pool: asyncpg.Pool,
) -> None:
    """Safe delete compares archive and live field for field; re-sync makes them equal."""
    account = await make_account(pool)
    campaign = await make_campaign(pool, account)
    ids = await _insert(pool, account, campaign, LeadFields(phone_numbers=["9000000001"], name="A"))
    lead_id = ids[0]

    async def archive(*, insert: bool, update: bool, delete: bool) -> tuple[int, int, int, int]:
        async with pool.acquire() as conn, conn.transaction():
            counts = await archive_leads(
                conn,
                NATIVE,
                account_id=account,
                lead_ids=[lead_id, 999_999],
                insert=insert,
                update=update,
                delete=delete,
            )
        return (counts.select_count, counts.insert_count, counts.update_count, counts.delete_count)

    assert await archive(insert=True, update=True, delete=False) == (1, 1, 0, 0)
    async with pool.acquire() as conn, conn.transaction():
        await update_leads(conn, NATIVE, account_id=account, patches={lead_id: {"name": "B"}})
    assert await archive(insert=True, update=False, delete=True) == (1, 0, 0, 0)
    assert await archive(insert=True, update=True, delete=True) == (1, 0, 1, 1)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM leads") == 0
        archived = await conn.fetchrow("SELECT * FROM lead_archive")
    assert archived is not None
    assert (archived["name"], archived["source_version"], archived["archive_version"]) == (
        "B",
        3,
        4,
    )


async def test_dearchive_restores_the_same_lead_and_drops_equal_archive_rows(
    pool: asyncpg.Pool,
) -> None:
    """Archive+delete then dearchive: same id, same entry time, archive row gone."""
    account = await make_account(pool)
    campaign = await make_campaign(pool, account)
    lead_id = (await _insert(pool, account, campaign, LeadFields(phone_numbers=["9000000002"])))[0]
    async with pool.acquire() as conn:
        entry_at = await conn.fetchval("SELECT entry_at FROM leads")
    async with pool.acquire() as conn, conn.transaction():
        await archive_leads(
            conn,
            NATIVE,
            account_id=account,
            lead_ids=[lead_id],
            insert=True,
            update=True,
            delete=True,
        )
    async with pool.acquire() as conn, conn.transaction():
        counts = await dearchive_leads(
            conn, NATIVE, account_id=account, lead_ids=[lead_id], insert=True, delete=True
        )
    assert (counts.select_count, counts.insert_count, counts.delete_count) == (1, 1, 1)
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT lead_id, entry_at FROM leads")
        assert await conn.fetchval("SELECT count(*) FROM lead_archive") == 0
        assert await conn.fetchval("SELECT count(*) FROM contacts WHERE lead_id = $1", lead_id) == 1
    assert row is not None
    assert (row["lead_id"], row["entry_at"]) == (lead_id, entry_at)


async def test_delete_and_foreign_leads(pool: asyncpg.Pool) -> None:
    """A lead of another account is invisible to delete, exactly like a missing one."""
    mine, theirs = await make_account(pool, "mine"), await make_account(pool, "theirs")
    my_campaign, their_campaign = await make_campaign(pool, mine), await make_campaign(pool, theirs)
    my_lead = (await _insert(pool, mine, my_campaign, LeadFields(phone_numbers=["9000000003"])))[0]
    their_lead = (
        await _insert(pool, theirs, their_campaign, LeadFields(phone_numbers=["9000000003"]))
    )[0]
    async with pool.acquire() as conn, conn.transaction():
        deleted = await delete_leads(
            conn, NATIVE, account_id=mine, lead_ids=[my_lead, their_lead, 424242]
        )
    assert deleted == [my_lead]
    async with pool.acquire() as conn:
        assert [r["lead_id"] for r in await conn.fetch("SELECT lead_id FROM leads")] == [their_lead]


async def _insert_logging_queries(
    pool: asyncpg.Pool, account: int, campaign: int, rows: list[LeadFields], *, check: bool
) -> tuple[InsertResult, list[str]]:
    """insert_leads in a transaction of its own, with every statement it sent."""
    queries: list[str] = []
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda record: queries.append(record.query))
        async with conn.transaction():
            result = await insert_leads(
                conn,
                NATIVE,
                account_id=account,
                campaign_id=campaign,
                rows=rows,
                check_duplicates=check,
            )
    return result, queries


async def test_fifty_thousand_checked_inserts_take_a_few_queries_per_chunk(
    pool: asyncpg.Pool,
) -> None:
    """Projections and duplicate checks are set-based: a few statements per chunk of keys,
    never one per lead."""
    account = await make_account(pool)
    campaign = await make_campaign(pool, account)
    rows = [LeadFields(phone_numbers=[f"+9198{n:08d}"], name=f"n{n}") for n in range(50_000)]
    result, queries = await _insert_logging_queries(pool, account, campaign, rows, check=True)
    assert len(result.inserted) == 50_000
    assert len(queries) <= 4 + 10 * -(-50_000 // CHUNK_LEADS), queries
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM leads") == 50_000
        assert await conn.fetchval("SELECT count(*) FROM contacts") == 50_000


async def test_large_insert_without_checks_is_written_as_its_keys_arrive(
    pool: asyncpg.Pool,
) -> None:
    """Without duplicate checks a large batch is appended and projected chunk by chunk: a few
    statements per chunk, never one per lead, and the same leads, contacts and order as one
    append would give."""
    account = await make_account(pool)
    campaign = await make_campaign(pool, account)
    count = 3 * CHUNK_LEADS + 5  # a short last chunk
    rows = [LeadFields(phone_numbers=[f"98{n:08d}"], name=f"n{n}") for n in range(count)]
    result, queries = await _insert_logging_queries(pool, account, campaign, rows, check=False)
    chunks = -(-count // CHUNK_LEADS)
    assert len(queries) <= 4 + 10 * chunks, queries
    assert result.duplicates == {}
    lead_ids = [result.inserted[i] for i in range(count)]
    assert lead_ids == sorted(lead_ids)
    async with pool.acquire() as conn:
        # Row i became the i-th lead, its stream's only event, appended in row order.
        stored = await conn.fetch(
            "SELECT stream_id, event_id FROM events WHERE type = 'LeadInserted' ORDER BY position"
        )
        assert [row["stream_id"] for row in stored] == [f"lead-{i}" for i in lead_ids]
        # Time-ordered ids (UUIDv7): the event-id index grows at its right edge too.
        event_ids = [row["event_id"] for row in stored]
        assert {event_id.version for event_id in event_ids} == {7}
        assert event_ids == sorted(event_ids)
        # The names are sealed in the events; the projection has them, lead by lead.
        names = await conn.fetch("SELECT name FROM leads ORDER BY lead_id")
        assert [row["name"] for row in names] == [f"n{n}" for n in range(count)]
        contacts = await conn.fetch(
            "SELECT lead_id, value FROM contacts WHERE kind = 'phone' ORDER BY lead_id"
        )
        assert [(row["lead_id"], row["value"]) for row in contacts] == [
            (lead_id, f"+9198{n:08d}") for n, lead_id in enumerate(lead_ids)
        ]
        assert await conn.fetchval("SELECT count(*) FROM leads") == count
        # Sealed ahead of each write, with keys made in this process and stored at the start,
        # by one statement for every chunk: every lead's key is there, and its event opens back
        # to what was inserted.
        keys = "SELECT count(*) FROM subject_keys WHERE account_id = $1"
        assert await conn.fetchval(keys, account) == count
        # (A COPY is not logged; the savepoint around the keys' COPY is.)
        assert queries.count("SAVEPOINT new_subject_keys") == 1
        last = await open_pairs(conn, await read_stream(conn, f"lead-{lead_ids[-1]}"))
        inserted = last[0][1]
        assert isinstance(inserted, LeadInserted)
        assert inserted.fields == rows[-1]
        assert inserted.dedupe_keys == [f"+9198{count - 1:08d}"]


async def test_each_chunk_is_sealed_once_the_chunk_before_it_has_its_events_in(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunked insert seals the next chunk while the server projects the last one, never
    while this process still builds that chunk's COPY rows: every chunk's sealing starts after
    the chunk before it was appended."""
    account = await make_account(pool)
    campaign = await make_campaign(pool, account)
    count = 3 * CHUNK_LEADS + 5
    rows = [LeadFields(phone_numbers=[f"98{n:08d}"]) for n in range(count)]
    steps: list[tuple[str, int]] = []  # in the order they happened, by chunk (first lead id)
    seal, append = lead_inserts._sealed_chunk, store.append_events

    def sealing(chunk: Any, *args: Any) -> Any:
        steps.append(("sealing", chunk.lead_ids[0]))
        return seal(chunk, *args)

    async def appending(conn: Any, sealed: list[StreamAppend], **kwargs: Any) -> Any:
        result = await append(conn, sealed, **kwargs)
        steps.append(("appended", int(sealed[0].stream_id.removeprefix("lead-"))))
        return result

    monkeypatch.setattr(lead_inserts, "_sealed_chunk", sealing)
    monkeypatch.setattr(writer, "append_events", appending)
    inserted = await _insert(pool, account, campaign, *rows, check=False)
    firsts = [inserted[i] for i in range(0, count, CHUNK_LEADS)]
    assert steps == [(step, first) for first in firsts for step in ("sealing", "appended")]


async def test_large_insert_failing_midway_writes_nothing(pool: asyncpg.Pool) -> None:
    """A chunked insert whose second chunk fails, after the first was appended and projected,
    fails at once (the third chunk, waiting to be sealed until the second's events are in, is
    let go), leaves no trace once its transaction rolls back, and its connection stays
    usable."""
    account = await make_account(pool)
    campaign = await make_campaign(pool, account)
    rows = [LeadFields(phone_numbers=[f"98{n:08d}"]) for n in range(3 * CHUNK_LEADS)]
    queries: list[str] = []
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        # The lead ids the insert will draw follow this one; a stream already holding one of
        # the second chunk's ids makes that chunk's append clash.
        taken = await conn.fetchval("SELECT nextval('lead_ids')") + CHUNK_LEADS + 2
        await conn.execute(
            "INSERT INTO events (event_id, stream_id, stream_version, account_id, type,"
            " schema_version, data, metadata)"
            " VALUES (gen_random_uuid(), $1, 1, $2, 'Marker', 1, '{}', '{}')",
            f"lead-{taken}",
            account,
        )
        conn.add_query_logger(lambda record: queries.append(record.query))
        with pytest.raises(ConcurrencyError):
            async with asyncio.timeout(60):
                await insert_leads(
                    conn,
                    NATIVE,
                    account_id=account,
                    campaign_id=campaign,
                    rows=rows,
                    check_duplicates=False,
                )
        await transaction.rollback()
        # The first chunk had been projected when the second failed.
        assert any("INSERT INTO public.contacts" in query for query in queries), queries
        assert await conn.fetchval("SELECT count(*) FROM events WHERE type = 'LeadInserted'") == 0
        assert await conn.fetchval("SELECT count(*) FROM leads") == 0
        assert await conn.fetchval("SELECT count(*) FROM contacts") == 0


def _expected_outcome(
    lead_ids: list[int], rows: list[NewLead], live: dict[str, int]
) -> tuple[dict[int, int], dict[int, list[int]]]:
    """The rule, one lead after another: a lead that checks is refused when a number of its is
    live in the campaign (those holders) or held by an earlier inserted lead of the batch (the
    first to hold it); every inserted lead holds its numbers."""
    inserted: dict[int, int] = {}
    duplicates: dict[int, list[int]] = {}
    held: dict[str, int] = {}
    for i, (lead_id, row) in enumerate(zip(lead_ids, rows, strict=True)):
        numbers = row.fields.phone_numbers
        if row.check_duplicates:
            found = sorted({live[n] for n in numbers if n in live})
            earlier = sorted({held[n] for n in numbers if n in held})
            if found or earlier:
                duplicates[i] = found or earlier
                continue
        inserted[i] = lead_id
        for number in numbers:
            held.setdefault(number, lead_id)
    return inserted, duplicates


async def test_a_large_checked_insert_refuses_duplicates_across_its_chunks_as_one_batch(
    pool: asyncpg.Pool,
) -> None:
    """A batch of several chunks with duplicate checks is written chunk by chunk, and each lead
    gets the outcome it would get in one batch: refused for a number live before the batch or
    held by an earlier inserted lead (in its chunk or an earlier one, checking or not), with
    the same holders named; the leads, contacts and subject keys are those of the inserted
    leads only."""
    account = await make_account(pool)
    campaign = await make_campaign(pool, account)
    live = {f"+91970{n:07d}": 0 for n in (5, 6)}
    for number in live:
        live[number] = (await _insert(pool, account, campaign, LeadFields(phone_numbers=[number])))[
            0
        ]
    count = 2 * CHUNK_LEADS + 50
    rows = []
    for n in range(count):
        number = f"+9198{n:08d}"
        if n % 97 == 3:  # the number of a lead some rows before, often in an earlier chunk
            number = f"+9198{n - 1 - (n * 7919) % min(n, 3 * CHUNK_LEADS // 2):08d}"
        if n in (0, 10, CHUNK_LEADS + 10):
            number = "+919700000005"  # live before the batch
        second = ["+919700000006"] if n == 2 * CHUNK_LEADS + 5 else []
        rows.append(
            NewLead(
                fields=LeadFields(phone_numbers=[number, *second], name=f"n{n}"),
                ctx=NATIVE,
                check_duplicates=n % 11 != 0,  # some rows do not check, but still hold numbers
            )
        )
    async with pool.acquire() as conn, conn.transaction():
        result = await insert_lead_batch(conn, account_id=account, campaign_id=campaign, leads=rows)
        # Planned for each chunk's own keys: a generic plan made while `contacts` looked small
        # compares every contact with every key once the earlier chunks are in it.
        assert await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
    drawn = sorted([*result.inserted.values()])
    first_id = drawn[0] - next(i for i in range(count) if i in result.inserted)
    lead_ids = [first_id + i for i in range(count)]
    inserted, duplicates = _expected_outcome(lead_ids, rows, live)
    assert len(duplicates) > 60  # the batch does refuse some, in and across chunks
    assert any(i >= CHUNK_LEADS and min(d) < lead_ids[CHUNK_LEADS] for i, d in duplicates.items())
    assert result.inserted == inserted
    assert result.duplicates == duplicates
    async with pool.acquire() as conn:
        stored = await conn.fetch("SELECT lead_id FROM leads ORDER BY lead_id")
        assert [r["lead_id"] for r in stored] == sorted([*live.values(), *inserted.values()])
        held = await conn.fetch(
            "SELECT value, lead_id FROM contacts WHERE campaign_id = $1 AND kind = 'phone'",
            campaign,
        )
        expected = set(live.items()) | {
            (number, lead_ids[i]) for i in inserted for number in rows[i].fields.phone_numbers
        }
        assert {(r["value"], r["lead_id"]) for r in held} == expected
        # The keys stored for every lead at the start stay for the inserted ones alone.
        keyed = await conn.fetch(
            "SELECT subject_id FROM subject_keys"
            " WHERE account_id = $1 AND subject_id LIKE 'lead-%'",
            account,
        )
        assert sorted(r["subject_id"] for r in keyed) == sorted(
            f"lead-{lead_id}" for lead_id in [*live.values(), *inserted.values()]
        )


@pytest.mark.parametrize("count", [2, 2 * CHUNK_LEADS])
async def test_a_lead_refused_for_the_do_not_call_list_holds_no_number_for_later_rows(
    pool: asyncpg.Pool, count: int
) -> None:
    """In one batch and in a streamed one: a lead kept out by the do-not-call list was never
    inserted, so a later lead (let in with some of its numbers blocked, as jtel's contacts
    are) that shares its number is not a duplicate of it."""
    account = await make_account(pool)
    campaign = await make_campaign(pool, account)
    blocked_number = "+919700000001"
    async with pool.acquire() as conn:
        await dnc.add_entries(conn, NATIVE, account, [dnc.NewDncEntry(phone=blocked_number)])
    rows = [
        NewLead(
            fields=LeadFields(phone_numbers=[f"+9198{n:08d}"]),
            ctx=NATIVE,
            check_duplicates=True,
            blocked_when_all=True,
        )
        for n in range(count)
    ]
    only_blocked = LeadFields(phone_numbers=[blocked_number])
    also_free = LeadFields(phone_numbers=[blocked_number, "+919700000002"])
    rows[0] = msgspec.structs.replace(rows[0], fields=only_blocked)
    rows[-1] = msgspec.structs.replace(rows[-1], fields=also_free)
    async with pool.acquire() as conn, conn.transaction():
        result = await insert_lead_batch(conn, account_id=account, campaign_id=campaign, leads=rows)
    assert list(result.blocked) == [0]
    assert result.duplicates == {}
    assert sorted(result.inserted) == list(range(1, count))


@pytest.mark.parametrize("held_at_most", [dnc.HELD_AT_MOST, 0])
async def test_a_long_write_checks_its_chunks_against_the_registry_read_whole_or_probed(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, held_at_most: int
) -> None:
    """A streamed write keeps out exactly the leads the registry blocks in its campaign,
    whether it read the few entries that can block them once or (past HELD_AT_MOST) probes
    them chunk by chunk: account-wide and the campaign's own entries block; another campaign's,
    an inactive and an expired one do not."""
    monkeypatch.setattr(dnc, "HELD_AT_MOST", held_at_most)
    account = await make_account(pool)
    campaign = await make_campaign(pool, account, "mine")
    await make_campaign(pool, account, "theirs")
    numbers = {
        name: f"+91970000{n:04d}" for n, name in enumerate(["awide", "own", "other", "off", "gone"])
    }
    async with pool.acquire() as conn:
        await dnc.add_entries(
            conn,
            NATIVE,
            account,
            [
                dnc.NewDncEntry(phone=numbers["awide"]),
                dnc.NewDncEntry(phone=numbers["own"], campaign="mine"),
                dnc.NewDncEntry(phone=numbers["other"], campaign="theirs"),
                dnc.NewDncEntry(phone=numbers["off"], status="Inactive"),
                dnc.NewDncEntry(phone=numbers["gone"], expires_at=datetime(2020, 1, 1, tzinfo=UTC)),
            ],
        )
    count = 2 * CHUNK_LEADS + 10
    at = {"awide": 5, "own": CHUNK_LEADS + 3, "other": 2 * CHUNK_LEADS + 1, "off": 7, "gone": 9}
    rows = [LeadFields(phone_numbers=[f"+9198{n:08d}"]) for n in range(count)]
    for name, index in at.items():
        rows[index] = LeadFields(phone_numbers=[numbers[name]])
    result, _ = await _insert_logging_queries(pool, account, campaign, rows, check=False)
    assert sorted(result.blocked) == [at["awide"], at["own"]]
    assert result.blocked[at["awide"]].scope == "account"
    assert result.blocked[at["own"]].scope == "campaign"
    assert len(result.inserted) == count - 2


async def test_a_long_write_to_a_campaign_holding_no_numbers_probes_nothing(
    pool: asyncpg.Pool,
) -> None:
    """A checked streamed write into a campaign whose leads hold no number, in an account with
    no do-not-call entry, sends no duplicate or registry probe with its chunks (it read both
    facts as it took its lock), and still refuses the duplicates among its own leads."""
    account = await make_account(pool)
    campaign = await make_campaign(pool, account)
    count = 2 * CHUNK_LEADS + 10
    rows = [LeadFields(phone_numbers=[f"+9198{n:08d}"]) for n in range(count)]
    rows[-1] = LeadFields(phone_numbers=["+919800000003"])  # the fourth lead's, two chunks back
    result, queries = await _insert_logging_queries(pool, account, campaign, rows, check=True)
    assert list(result.duplicates) == [count - 1]
    assert lead_inserts.SELECT_PHONE_OWNERS not in queries
    assert dnc.SELECT_BLOCKING_DIGESTS not in queries
    # A campaign that held a number is probed with each chunk.
    other = await make_campaign(pool, account, "held")
    await _insert(pool, account, other, LeadFields(phone_numbers=["+919800000003"]))
    result, queries = await _insert_logging_queries(pool, account, other, rows, check=True)
    assert sorted(result.duplicates) == [3, count - 1]
    assert queries.count(lead_inserts.SELECT_PHONE_OWNERS) == -(-count // CHUNK_LEADS)
