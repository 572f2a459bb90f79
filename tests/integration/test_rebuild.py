"""Projection rebuild, verify and status on a real PostgreSQL, seeded through the write path."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import pytest

from lead_ledger.cli_projections import add_commands, run
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.database import connect, create_pool
from lead_ledger.ledger.envelope import NO_STREAM, Actor
from lead_ledger.ledger.events import (
    AccountCreated,
    AccountSettings,
    CampaignConfig,
    CampaignCreated,
    LeadEvent,
    LeadFields,
    stream_of_account,
    stream_of_lead,
)
from lead_ledger.ledger.lead import (
    LeadState,
    RowTimes,
    decide_archive,
    decide_dearchive,
    decide_delete,
    decide_insert,
    decide_update,
    fold,
)
from lead_ledger.ledger.locks import WRITE_GATE_KEY
from lead_ledger.ledger.opening import open_pairs
from lead_ledger.ledger.store import read_stream
from lead_ledger.ledger.subject_keys import SubjectKeyError
from lead_ledger.projections.base import SHADOW_SCHEMA
from lead_ledger.projections.gate import REBUILD_LOCK_KEY, enter_write_gate
from lead_ledger.projections.rebuild import RebuildError, rebuild, status, verify
from lead_ledger.projections.rebuild.shadow import (
    LANES,
    create_shadow,
    index_statements,
    select_projections,
    shadow_dropped,
)
from lead_ledger.projections.registry import BY_NAME, PROJECTIONS
from lead_ledger.service.writer import Context, record, stream_append
from lead_ledger.settings import Settings

# The module, not the function the package exports under the same name.
verify_module = importlib.import_module("lead_ledger.projections.rebuild.verify")


@pytest.fixture
def pool(owner_pool: asyncpg.Pool) -> asyncpg.Pool:
    """Rebuilds create, swap and drop tables: the owner's work. This module's pool logs in as it."""
    return owner_pool


CTX = Context(actor=Actor(dialect="native"))
REGION = "IN"

# --- seeding through the real write path (also used by test_replay_property) -------------------


async def create_account(conn: Connection, name: str, campaigns: int) -> tuple[int, list[int]]:
    """An account and its campaigns, as the account service would record them."""
    account_id: int = await conn.fetchval("SELECT nextval('account_ids')")
    campaign_ids: list[int] = [
        await conn.fetchval("SELECT nextval('campaign_ids')") for _ in range(campaigns)
    ]
    events: list[AccountCreated | CampaignCreated] = [
        AccountCreated(
            account_id=account_id, name=name, settings=AccountSettings(default_region=REGION)
        )
    ]
    events += [
        CampaignCreated(
            account_id=account_id,
            campaign_id=cid,
            config=CampaignConfig(name=f"{name}-c{cid}", crm_fields=["crm:plan"]),
        )
        for cid in campaign_ids
    ]
    async with conn.transaction():
        await enter_write_gate(conn)
        append = stream_append(
            CTX, stream_of_account(account_id), NO_STREAM, events, account_id=account_id
        )
        await record(conn, [append])
    return account_id, campaign_ids


async def insert_lead(
    conn: Connection, account_id: int, campaign_id: int, fields: LeadFields
) -> int:
    async with conn.transaction():
        await enter_write_gate(conn)
        lead_id: int = await conn.fetchval("SELECT nextval('lead_ids')")
        event = decide_insert(
            lead_id=lead_id,
            account_id=account_id,
            campaign_id=campaign_id,
            fields=fields,
            default_region=REGION,
        )
        append = stream_append(
            CTX, stream_of_lead(lead_id), NO_STREAM, [event], account_id=account_id
        )
        await record(conn, [append])
    return lead_id


async def lead_state(conn: Connection, lead_id: int) -> LeadState:
    opened = await open_pairs(conn, await read_stream(conn, stream_of_lead(lead_id)))
    state = fold(cast("list[LeadEvent]", [event for _, event in opened]))
    assert state is not None
    return state


async def change_lead(
    conn: Connection, lead_id: int, decide: Callable[[LeadState, RowTimes], Sequence[LeadEvent]]
) -> int:
    """Decide on the lead's current state and record the outcome; the number of events."""
    async with conn.transaction():
        await enter_write_gate(conn)
        state = await lead_state(conn, lead_id)
        row = await conn.fetchrow(
            "SELECT entry_at, modified_at FROM leads WHERE lead_id = $1", lead_id
        )
        times = RowTimes(entry_at=row["entry_at"], modified_at=row["modified_at"]) if row else None
        events = list(decide(state, times or RowTimes()))
        if events:
            append = stream_append(
                CTX, stream_of_lead(lead_id), state.version, events, account_id=state.account_id
            )
            await record(conn, [append])
        return len(events)


def update(patch: Mapping[str, object]) -> Callable[[LeadState, RowTimes], Sequence[LeadEvent]]:
    return lambda state, _times: decide_update(state, patch, REGION)


def fields_for(rng: random.Random, n: int) -> LeadFields:
    return LeadFields(
        phone_numbers=[f"98765{n:05d}"],
        name=f"Lead {n}",
        city=rng.choice(["Pune", "Delhi", None]),
        user_data=f"u{n}" if rng.random() < 0.5 else None,
        crm={"crm:plan": rng.choice(["gold", "silver"])},
        extra={"score": rng.randint(1, 9)},
    )


async def seed(conn: Connection, leads: int = 40, seed_value: int = 7) -> list[int]:
    """Two accounts, three campaigns, leads with every kind of change; the lead ids."""
    rng = random.Random(seed_value)  # noqa: S311 - reproducible test data
    account_a, campaigns_a = await create_account(conn, f"a{seed_value}", 2)
    account_b, campaigns_b = await create_account(conn, f"b{seed_value}", 1)
    targets = [(account_a, c) for c in campaigns_a] + [(account_b, c) for c in campaigns_b]
    ids = []
    for n in range(leads):
        account_id, campaign_id = rng.choice(targets)
        ids.append(await insert_lead(conn, account_id, campaign_id, fields_for(rng, n)))
    for n, lead_id in enumerate(ids):
        match n % 6:
            case 0:
                patch = {"phone_numbers": [f"91234{n:05d}"], "crm": {"crm:plan": "bronze"}}
                await change_lead(conn, lead_id, update(patch))
            case 1:
                patch = {"agent": f"agent{n}", "reference_number": f"r{n}"}
                await change_lead(conn, lead_id, update(patch))
            case 2:
                await change_lead(conn, lead_id, lambda s, _t: [decide_delete(s)])
            case 3:
                await change_lead(
                    conn,
                    lead_id,
                    lambda s, t: (
                        decide_archive(s, insert=True, update=True, delete=True, times=t).events
                    ),
                )
                await change_lead(
                    conn,
                    lead_id,
                    lambda s, _t: (
                        decide_dearchive(s, insert=True, delete=True, default_region=REGION).events
                    ),
                )
            case 4:
                await change_lead(
                    conn,
                    lead_id,
                    lambda s, t: (
                        decide_archive(s, insert=True, update=False, delete=False, times=t).events
                    ),
                )
            case _:
                pass  # every sixth lead keeps its insert alone
    return ids


# --- tests ---------------------------------------------------------------------------------------


async def test_verify_finds_live_equal_to_rebuilt(pool: asyncpg.Pool) -> None:
    """After scenarios through the write path, a replay of the log equals the live tables."""
    async with pool.acquire() as conn:
        await seed(conn)
    report = await verify(pool)
    assert [t.name for t in report.tables if not t.ok] == []
    assert report.events > 40
    async with pool.acquire() as conn:
        shadow_tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1", SHADOW_SCHEMA
        )
    assert shadow_tables == 0


@pytest.mark.projections_diverge
async def test_verify_names_a_corrupted_row(pool: asyncpg.Pool) -> None:
    """A live row changed behind the log's back is reported with its key, on both sides."""
    async with pool.acquire() as conn:
        ids = await seed(conn)
        corrupted = ids[1]
        await conn.execute("UPDATE leads SET name = 'x' WHERE lead_id = $1", corrupted)
    report = await verify(pool)
    assert not report.ok
    bad = {t.name: t for t in report.tables if not t.ok}
    assert list(bad) == ["leads"]
    leads = bad["leads"]
    assert (leads.only_live, leads.only_rebuilt) == (1, 1)
    assert sorted((d.key, d.side) for d in leads.differences) == [
        (corrupted, "live"),
        (corrupted, "rebuilt"),
    ]
    assert leads.changed_columns == {corrupted: ["name"]}  # names only, never the values


@pytest.mark.projections_diverge
@pytest.mark.parametrize("max_buckets", [verify_module.MAX_BUCKETS, 0], ids=["buckets", "whole"])
async def test_verify_counts_rows_moved_far_and_repeated(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, max_buckets: int
) -> None:
    """A lead moved to a key in a bucket of its own, the key it left, and a contact row present
    twice on the live side are each found with exact counts, whether the differing buckets or
    whole tables are compared row by row."""
    monkeypatch.setattr(verify_module, "MAX_BUCKETS", max_buckets)
    async with pool.acquire() as conn:
        ids = await seed(conn)
        moved, far = ids[1], ids[1] + (10_000 << verify_module.BUCKET_BITS)  # ids[1] is live
        changed = await conn.execute("UPDATE leads SET lead_id = $2 WHERE lead_id = $1", moved, far)
        assert changed == "UPDATE 1"
        await conn.execute(
            "INSERT INTO contacts (SELECT * FROM contacts WHERE lead_id = $1)", moved
        )
        contacts_of_moved = await conn.fetchval(
            "SELECT count(*) / 2 FROM contacts WHERE lead_id = $1", moved
        )
    report = await verify(pool)
    bad = {t.name: t for t in report.tables if not t.ok}
    assert sorted(bad) == ["contacts", "leads"]
    leads, contacts = bad["leads"], bad["contacts"]
    assert (leads.only_live, leads.only_rebuilt) == (1, 1)
    assert sorted((d.key, d.side) for d in leads.differences) == [(moved, "rebuilt"), (far, "live")]
    assert leads.changed_columns == {}  # a row missing on each side, not a row changed
    assert (contacts.only_live, contacts.only_rebuilt) == (contacts_of_moved, 0)
    assert {(d.key, d.side) for d in contacts.differences} == {(moved, "live")}


async def test_verify_builds_only_the_indexes_its_catch_up_looks_up_by(
    pool: asyncpg.Pool,
) -> None:
    """A rebuild's shadow tables get every constraint and index of the live ones; verify's only
    those leading with the projection's key, which the catch-up finds rows by."""
    leads, contacts = BY_NAME["leads"], BY_NAME["contacts"]
    async with pool.acquire() as conn:
        every, _ = await index_statements(conn, leads)
        keyed, _ = await index_statements(conn, leads, key_lookups_only=True)
        every_contact, _ = await index_statements(conn, contacts)
        keyed_contact, _ = await index_statements(conn, contacts, key_lookups_only=True)
    assert len(every) == 3
    assert keyed == [
        f'ALTER TABLE {SHADOW_SCHEMA}.leads ADD CONSTRAINT "leads_pkey" PRIMARY KEY (lead_id)'
    ]
    assert len(every_contact) == 2
    assert keyed_contact == [
        f"CREATE INDEX contacts_lead_idx ON {SHADOW_SCHEMA}.contacts USING btree (lead_id)"
    ]


@pytest.mark.parametrize(("run", "persistence"), [(verify, "u"), (rebuild, "p")])
async def test_only_verify_builds_unlogged_shadow_tables(
    pool: asyncpg.Pool, run: Callable[..., Any], persistence: str
) -> None:
    """Verify's shadow tables, compared and dropped, write no WAL (unlogged); a rebuild's, which
    are swapped in as the live tables, are logged like them."""
    async with pool.acquire() as conn:
        await seed(conn, leads=12)
    seen: list[asyncio.Task[list[asyncpg.Record]]] = []

    def progress(_phase: str, _done: int, _total: int) -> None:
        # Once, while the build runs: the shadow tables exist from the first report on.
        if not seen:
            seen.append(asyncio.ensure_future(pool.fetch(SHADOW_PERSISTENCE, SHADOW_SCHEMA)))

    await run(pool, progress=progress)
    tables = {r["relname"]: r["relpersistence"] for r in await seen[0]}
    assert {"leads", "contacts", "lead_archive"} <= tables.keys()
    assert {tables[p.table] for p in PROJECTIONS} == {persistence}


SHADOW_PERSISTENCE = """
SELECT c.relname, c.relpersistence::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind = 'r'
"""


async def test_rebuild_restores_a_corrupted_row_and_records_a_checkpoint(
    pool: asyncpg.Pool,
) -> None:
    """A rebuild swaps in tables folded from the log: the corrupted row is right again."""
    async with pool.acquire() as conn:
        ids = await seed(conn)
        expected = await conn.fetchval("SELECT name FROM leads WHERE lead_id = $1", ids[1])
        await conn.execute("UPDATE leads SET name = 'x' WHERE lead_id = $1", ids[1])
        await conn.execute("DELETE FROM contacts WHERE lead_id = $1", ids[0])
    report = await rebuild(pool)
    assert report.rows["leads"] > 0
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT name FROM leads WHERE lead_id = $1", ids[1]) == expected
        head = await conn.fetchval("SELECT max(position) FROM events")
        indexes = await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'leads'"
        )
    assert sorted(r["indexname"] for r in indexes) == [
        "leads_account_campaign_idx",
        "leads_account_idx",
        "leads_pkey",
    ]
    assert (await verify(pool)).ok
    statuses = {s.name: s for s in await status(pool)}
    assert statuses["leads"].checkpoint_position == head
    assert statuses["leads"].rows == report.rows["leads"]
    assert statuses["leads"].lag == 0
    assert not statuses["leads"].rebuilding
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", REBUILD_LOCK_KEY)
        try:
            assert all(s.rebuilding for s in await status(pool))
            with pytest.raises(RebuildError, match="another projection rebuild"):
                await rebuild(pool)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", REBUILD_LOCK_KEY)


@pytest.mark.projections_diverge
async def test_interrupted_rebuild_leaves_live_tables_and_no_shadow(pool: asyncpg.Pool) -> None:
    """A rebuild that fails before its swap changes nothing live and drops its shadow tables."""
    async with pool.acquire() as conn:
        ids = await seed(conn, leads=12)
        await conn.execute("UPDATE leads SET name = 'x' WHERE lead_id = $1", ids[1])
        # A stale shadow table from an earlier crash: the rebuild must drop it first.
        await conn.execute(f"CREATE TABLE {SHADOW_SCHEMA}.leads (junk int)")

    class StopRebuildError(Exception):
        pass

    def stop_at_copy(phase: str, _done: int, _total: int) -> None:
        if phase == "copy":
            raise StopRebuildError

    with pytest.raises(ExceptionGroup) as raised:
        await rebuild(pool, ["leads", "contacts"], progress=stop_at_copy)
    assert raised.group_contains(StopRebuildError)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT name FROM leads WHERE lead_id = $1", ids[1]) == "x"
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pg_tables WHERE schemaname = $1", SHADOW_SCHEMA
            )
            == 0
        )
    with pytest.raises(RebuildError, match="unknown projection"):
        await rebuild(pool, ["nope"])


async def test_an_interrupted_rebuild_never_waits_for_a_lane_cut_mid_statement(
    pool: asyncpg.Pool,
) -> None:
    """A lane cut mid-statement (a cancelled COPY's column lookup) can keep a lock on a shadow
    table in its session; the cleanup after a failure ends the other lanes' sessions before it
    drops the shadow tables, so it never waits on them."""
    projections = select_projections(["leads"])
    async with pool.acquire() as first, pool.acquire() as lane:
        await create_shadow(first, projections)
        stuck = lane.transaction()
        await stuck.start()
        await lane.execute("SELECT * FROM ledger_shadow.leads LIMIT 0")  # holds its lock

        async def fail_with_the_lane_cut() -> None:
            async with shadow_dropped([first, lane], projections):
                raise RuntimeError("a lane failed")

        with pytest.raises(RuntimeError, match="a lane failed"):
            await asyncio.wait_for(fail_with_the_lane_cut(), timeout=30)
        tables = "SELECT count(*) FROM pg_tables WHERE schemaname = $1"
        assert await first.fetchval(tables, SHADOW_SCHEMA) == 0


async def test_rebuild_while_writers_keep_writing(pool: asyncpg.Pool) -> None:
    """Four writers insert, update and delete during a rebuild; nothing is lost or doubled."""
    async with pool.acquire() as conn:
        account_id, campaigns = await create_account(conn, "busy", 3)
        rng = random.Random(1)  # noqa: S311 - reproducible test data
        for n in range(300):
            await insert_lead(conn, account_id, campaigns[n % 3], fields_for(rng, n))
    stop = asyncio.Event()
    deleted = 0
    done = [0]  # operations finished so far, by all writers

    async def writer(w: int) -> int:
        nonlocal deleted
        rng, ops = random.Random(w), 0  # noqa: S311
        async with pool.acquire() as conn:
            mine: list[int] = []
            while not stop.is_set() or ops < 40:
                n = 10_000 * (w + 1) + ops
                kind = rng.random()
                if kind < 0.5 or len(mine) < 3:
                    fields = fields_for(rng, n)
                    mine.append(await insert_lead(conn, account_id, rng.choice(campaigns), fields))
                elif kind < 0.9:
                    patch = {"city": f"c{n}", "phone_numbers": [f"9{n:09d}"]}
                    await change_lead(conn, rng.choice(mine), update(patch))
                else:
                    await change_lead(conn, mine.pop(), lambda s, _t: [decide_delete(s)])
                    deleted += 1
                ops += 1
                done[0] += 1
        return ops

    writers = [asyncio.create_task(writer(w)) for w in range(4)]
    await asyncio.sleep(0.2)
    before = done[0]
    report = await rebuild(pool, batch=100)
    during = done[0] - before
    await asyncio.sleep(0.2)
    stop.set()
    ops = await asyncio.gather(*writers)
    # How many writes land during the rebuild depends on the machine's speed, so the test asks
    # only that some did, and that every writer did its share.
    assert during > 0
    assert min(ops) >= 40
    assert report.caught_up > 0  # writes landed between the bulk read and the swap
    assert (await verify(pool)).ok
    async with pool.acquire() as conn:
        inserted = await conn.fetchval("SELECT count(*) FROM events WHERE type = 'LeadInserted'")
        live = await conn.fetchval("SELECT count(*) FROM leads")
    assert live == inserted - deleted


async def test_pooled_connection_used_before_the_swap_works_after(
    database_url: str, owner_database_url: str
) -> None:
    """A service's pooled connection with a cached statement on `leads` runs it again after the
    owner's swap, and may write the swapped-in table at once."""
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            lead_ids = await seed(conn, leads=6)
            query = "SELECT * FROM leads WHERE lead_id = $1"
            before = await conn.fetchrow(query, lead_ids[0])
            backend = await conn.fetchval("SELECT pg_backend_pid()")
        other = await connect(owner_database_url)
        try:
            await rebuild(other)
        finally:
            await other.close()
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == backend  # the same one
            after = await conn.fetchrow(query, lead_ids[0])
            await conn.execute("UPDATE leads SET city = city WHERE lead_id = $1", lead_ids[0])
    finally:
        await pool.close()
    assert before is not None
    assert after == before


async def test_cli_verify_exits_non_zero_on_a_difference(
    database_url: str,
    owner_database_url: str,
    pool: asyncpg.Pool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`projections verify` (as the migration URL's owner) exits 0 when live equals rebuilt and
    1 naming the differing row when one differs; `status` lists every projection with its rows,
    checkpoint and head."""
    async with pool.acquire() as conn:
        ids = await seed(conn, leads=6)
        leads = await conn.fetchval("SELECT count(*) FROM leads")
        head = await conn.fetchval("SELECT max(position) FROM events")
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    settings = Settings(database_url=database_url, migration_database_url=owner_database_url)
    assert await run(parser.parse_args(["projections", "verify"]), settings) == 0
    assert "live equals rebuilt" in capsys.readouterr().out
    assert await run(parser.parse_args(["projections", "status"]), settings) == 0
    status = {
        line.split()[0]: line.split()[1:]
        for line in capsys.readouterr().out.replace("│", " ").splitlines()
        if line.split() and line.split()[0] in ("leads", "contacts", "campaigns", "jobs")
    }
    assert set(status) == {"leads", "contacts", "campaigns", "jobs"}
    assert status["leads"][0] == f"{leads:,}"
    assert status["leads"][1] == "-"  # never rebuilt: no checkpoint
    assert status["leads"][-2:] == [f"{head:,}", "0"]  # the head of the log; inline, no lag
    async with pool.acquire() as conn:
        await conn.execute("UPDATE leads SET city = 'x' WHERE lead_id = $1", ids[0])
    assert await run(parser.parse_args(["projections", "verify", "leads"]), settings) == 1
    out = capsys.readouterr().out
    assert "leads: DIFFERENT (1 row(s) only live, 1 only rebuilt)" in out
    assert f"leads key {ids[0]}: live only" in out
    assert f"leads key {ids[0]}: rebuilt only" in out
    assert f"leads key {ids[0]}: columns that differ: city" in out
    assert "live differs from rebuilt" in out
    assert await run(parser.parse_args(["projections", "rebuild", "leads"]), settings) == 0
    assert await run(parser.parse_args(["projections", "verify"]), settings) == 0


async def test_cli_tells_busy_and_unknown_apart_from_a_difference(
    database_url: str,
    owner_database_url: str,
    pool: asyncpg.Pool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A verify or rebuild that cannot run while another one does exits 3 (try again), an
    unknown projection 2 (a usage error): neither is 1, which says live and rebuilt differ."""
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    settings = Settings(database_url=database_url, migration_database_url=owner_database_url)
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", REBUILD_LOCK_KEY)
        try:
            for action in ("verify", "rebuild"):
                assert await run(parser.parse_args(["projections", action]), settings) == 3
                assert "another projection rebuild or verify is running" in capsys.readouterr().err
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", REBUILD_LOCK_KEY)
    assert await run(parser.parse_args(["projections", "verify", "nope"]), settings) == 2
    assert "unknown projection(s): nope" in capsys.readouterr().err


async def test_streams_out_of_feed_order_fold_in_stream_order(pool: asyncpg.Pool) -> None:
    """An older transaction appending after a younger one (feed order != stream order) folds
    right, in the bulk read and in the fence-free catch-up under the gate."""
    rng = random.Random(3)  # noqa: S311 - reproducible test data
    async with pool.acquire() as conn:
        account_id, campaigns = await create_account(conn, "order", 1)
        lead = await insert_lead(conn, account_id, campaigns[0], fields_for(rng, 1))
    async with pool.acquire() as old, pool.acquire() as young, pool.acquire() as fence:
        # An open transaction with an xid holds the visibility fence below everything after it,
        # so the rebuild's bulk read and fenced catch-up see none of what follows.
        holder = fence.transaction()
        await holder.start()
        await fence.fetchval("SELECT pg_current_xact_id()")
        async with old.transaction():
            await insert_lead(old, account_id, campaigns[0], fields_for(rng, 2))
            await change_lead(young, lead, update({"city": "young"}))  # version 2, commits
            await change_lead(old, lead, update({"city": "old"}))  # version 3, older xid
        versions = await young.fetch(
            "SELECT stream_version FROM events WHERE stream_id = $1 "
            "ORDER BY transaction_id, position",
            stream_of_lead(lead),
        )
        assert [r["stream_version"] for r in versions] == [1, 3, 2]
        assert (await verify(pool)).ok  # re-checked under the gate, fence-free
        report = await rebuild(pool)
        await holder.rollback()
    assert report.caught_up >= 3
    assert (await verify(pool)).ok
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT city FROM leads WHERE lead_id = $1", lead) == "old"


async def test_blocked_swap_times_out_retries_and_loses_nothing(pool: asyncpg.Pool) -> None:
    """A reader holding `leads` makes swap attempts time out; a lead written between attempts
    is still in the swapped-in tables, and a swap that never gets its locks changes nothing."""
    async with pool.acquire() as conn:
        account_id, campaigns = await create_account(conn, "blocked", 1)
        rng = random.Random(5)  # noqa: S311 - reproducible test data
        for n in range(5):
            await insert_lead(conn, account_id, campaigns[0], fields_for(rng, n))
    async with pool.acquire() as reader, pool.acquire() as writer:
        async with reader.transaction():
            await reader.fetchval("SELECT count(*) FROM leads")  # holds ACCESS SHARE
            with pytest.raises(RebuildError, match="swap gave up"):
                await rebuild(pool, lock_timeout_ms=100, attempts=2)
        shadow = "SELECT count(*) FROM pg_tables WHERE schemaname = $1"
        assert await writer.fetchval(shadow, SHADOW_SCHEMA) == 0

        holder = reader.transaction()
        await holder.start()
        await reader.fetchval("SELECT count(*) FROM leads")
        task = asyncio.create_task(rebuild(pool, lock_timeout_ms=100, attempts=100))
        await asyncio.sleep(0.5)  # attempts are failing now
        late = await insert_lead(writer, account_id, campaigns[0], fields_for(rng, 99))
        await asyncio.sleep(0.3)  # and fail again after catching up the late lead
        await holder.rollback()
        report = await task
    assert report.caught_up >= 1
    assert (await verify(pool)).ok
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM leads WHERE lead_id = $1", late) == 1
        assert report.rows["leads"] == await conn.fetchval("SELECT count(*) FROM leads")
        assert report.rows["contacts"] == await conn.fetchval("SELECT count(*) FROM contacts")


async def test_writer_entering_the_gate_late_is_not_the_deadlock_victim(
    pool: asyncpg.Pool,
) -> None:
    """A writer that read `leads` before entering the gate blocks the swap, which gives up
    first and retries: the writer commits and the rebuild still completes."""
    async with pool.acquire() as conn:
        account_id, campaigns = await create_account(conn, "late", 1)
        rng = random.Random(9)  # noqa: S311 - reproducible test data
        await insert_lead(conn, account_id, campaigns[0], fields_for(rng, 1))
    gate_held = """
        SELECT count(*) FROM pg_locks
        WHERE locktype = 'advisory' AND mode = 'ExclusiveLock' AND granted
          AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1
    """
    async with pool.acquire() as writer, pool.acquire() as observer:
        async with writer.transaction():
            await writer.fetchval("SELECT count(*) FROM leads")  # reads first, gate later
            task = asyncio.create_task(rebuild(pool))
            async with asyncio.timeout(30):
                while not await observer.fetchval(  # noqa: ASYNC110 - polling pg_locks
                    gate_held, WRITE_GATE_KEY >> 32, WRITE_GATE_KEY & 0xFFFF_FFFF
                ):
                    await asyncio.sleep(0.005)
            lead = await insert_lead(writer, account_id, campaigns[0], fields_for(rng, 2))
        await task
    assert (await verify(pool)).ok
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM leads WHERE lead_id = $1", lead) == 1


SELECT_SQL_PATH_EVENTS = """
SELECT count(*) FROM events e
WHERE e.type IN ('LeadInserted', 'LeadUpdated', 'LeadReassigned')
  AND NOT EXISTS (
      SELECT 1 FROM events o
      WHERE o.stream_id = e.stream_id
        AND o.type NOT IN ('LeadInserted', 'LeadUpdated', 'LeadReassigned'))
"""


async def test_set_based_path_reproduces_the_fold_for_every_change_it_applies(
    pool: asyncpg.Pool,
) -> None:
    """Inserts, updates and reassignments applied in SQL give exactly the folded rows."""
    expiry = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    async with pool.acquire() as conn:
        account_id, (campaign, _) = await create_account(conn, "setbased", 2)
        fields = LeadFields(
            phone_numbers=["9876500001", "9876500002"],
            name="Two phones",
            user_data="ud",
            crm={"crm:plan": "gold", "crm:tier": ""},
            extra={"score": 1.5, "flag": True, "none": None},
        )
        many = await insert_lead(conn, account_id, campaign, fields)
        for patch in (
            {"phone_numbers": ["9876500003"], "city": "Pune", "expires_at": expiry},
            {"city": "Delhi", "user_data": None, "priority": 7},  # last value of city wins
            {"agent": "a1"},  # LeadReassigned
            {"crm": {"crm:zone": "north"}, "reference_number": "r-1", "status": "called"},
            {"agent": None, "expires_at": None},
        ):
            assert await change_lead(conn, many, update(patch)) >= 1
        plain = await insert_lead(conn, account_id, campaign, LeadFields(phone_numbers=["9123"]))
        # A stream with an event the SQL path leaves alone goes to the Python fold whole.
        await change_lead(conn, plain, update({"name": "archived"}))
        await change_lead(
            conn,
            plain,
            lambda s, t: decide_archive(s, insert=True, update=False, delete=False, times=t).events,
        )
        expected_in_sql: int = await conn.fetchval(SELECT_SQL_PATH_EVENTS)
    report = await verify(pool)
    assert [(t.name, t.differences) for t in report.tables if not t.ok] == []
    rebuilt = await rebuild(pool)
    assert expected_in_sql == rebuilt.events_in_sql
    # Only the stream of `many` is in SQL: `plain` has an archive event, accounts are not leads.
    assert expected_in_sql == await pool.fetchval(
        "SELECT count(*) FROM events WHERE stream_id = $1", stream_of_lead(many)
    )
    # The shadow tables were built without autovacuum; the swapped-in ones have it again.
    options = await pool.fetchval("SELECT reloptions FROM pg_class WHERE oid = 'leads'::regclass")
    assert options is None
    row = await pool.fetchrow("SELECT * FROM leads WHERE lead_id = $1", many)
    assert row is not None
    assert (row["city"], row["user_data"], row["agent"], row["expires_at"]) == (
        "Delhi",
        None,
        None,
        None,
    )


async def test_progress_reports_each_phase_in_order(pool: asyncpg.Pool) -> None:
    """The callback behind the progress bar: the SQL path from nothing to all of its events,
    then the Python fold up to every event, indexes, and the swap; counts never go back."""
    async with pool.acquire() as conn:
        await seed(conn, leads=24)
    calls: list[tuple[str, int, int]] = []
    report = await rebuild(pool, progress=lambda *call: calls.append(call))
    phases = list(dict.fromkeys(phase for phase, _, _ in calls))
    assert phases[0] == "sql"
    assert phases[-1] == "swap"
    assert phases.index("read") < phases.index("index") < phases.index("swap")
    sql = [(done, total) for phase, done, total in calls if phase == "sql"]
    assert sql[0] == (0, report.events_in_sql)
    assert sql[-1] == (report.events_in_sql, report.events_in_sql)
    assert 0 < report.events_in_sql < report.events
    read = [(done, total) for phase, done, total in calls if phase == "read"]
    assert read[-1] == (report.events, report.events)
    for phase in phases:
        done = [d for p, d, _ in calls if p == phase]
        assert done == sorted(done), phase


async def test_a_key_the_master_key_does_not_open_stops_the_rebuild_cleanly(
    pool: asyncpg.Pool,
) -> None:
    """A rebuild that meets a subject key this master key does not open (in the last lane)
    raises that error, and leaves the live tables, the shadow schema and the pool as they
    were."""
    async with pool.acquire() as conn:
        await seed(conn, leads=24)
        before = await conn.fetch("SELECT * FROM leads ORDER BY lead_id")
        row = await conn.fetchrow(
            """SELECT k.subject_id, k.wrapped_key FROM subject_keys k
               JOIN events e ON e.stream_id = k.subject_id AND e.stream_version = 1
               WHERE e.type = 'LeadInserted' AND abs(hashtext(e.stream_id) % $1) = $1 - 1
               ORDER BY e.position LIMIT 1""",
            LANES,
        )
        assert row is not None
        subject, wrapped = row
        await conn.execute(
            "UPDATE subject_keys SET wrapped_key = $2 WHERE subject_id = $1", subject, bytes(40)
        )
    try:
        with pytest.raises(SubjectKeyError):
            await rebuild(pool, ["leads", "contacts"])
    finally:
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE subject_keys SET wrapped_key = $2 WHERE subject_id = $1", subject, wrapped
            )
    async with pool.acquire() as conn:
        assert await conn.fetch("SELECT * FROM leads ORDER BY lead_id") == before
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pg_tables WHERE schemaname = $1", SHADOW_SCHEMA
            )
            == 0
        )
    assert await asyncio.gather(*(pool.fetchval("SELECT 1") for _ in range(4))) == [1] * 4
