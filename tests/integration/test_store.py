"""The event store against real PostgreSQL: append, read, concurrency, idempotency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import msgspec
import pytest

from lead_ledger.ledger.envelope import (
    ANY_VERSION,
    NO_STREAM,
    Actor,
    EventMetadata,
    NewEvent,
    RecordedEvent,
    StreamAppend,
)
from lead_ledger.ledger.errors import ConcurrencyError
from lead_ledger.ledger.key_store import KeysExistedError, NewKeys
from lead_ledger.ledger.store import (
    COPY_THRESHOLD,
    Along,
    DuplicateEventError,
    append_events,
    head_position,
    read_stream,
)
from tests.support import logged_statements


def event(kind: str = "thing_happened", **body: object) -> NewEvent:
    return NewEvent(event_id=uuid.uuid4(), type=kind, data=msgspec.json.encode(body))


async def append(
    pool: asyncpg.Pool, stream_id: str, expected: int, *events: NewEvent, account: int | None = None
) -> list[int]:
    async with pool.acquire() as conn, conn.transaction():
        result = await append_events(
            conn,
            [
                StreamAppend(
                    stream_id=stream_id,
                    expected_version=expected,
                    events=list(events),
                    account_id=account,
                )
            ],
        )
    return [e.stream_version for e in result.events]


async def test_append_then_read_returns_events_in_version_order(pool: asyncpg.Pool) -> None:
    """Appended events come back in order with their bodies, metadata and versions."""
    metadata = EventMetadata(
        actor=Actor(dialect="native", account_id=7, credential_id="c1"), request_id="r1"
    )
    events = [event(n=i) for i in range(3)]
    async with pool.acquire() as conn, conn.transaction():
        result = await append_events(
            conn,
            [
                StreamAppend(
                    stream_id="lead-1",
                    expected_version=NO_STREAM,
                    events=events,
                    metadata=metadata,
                    account_id=7,
                )
            ],
        )
    assert [e.stream_version for e in result.events] == [1, 2, 3]
    assert result.already_stored is False
    async with pool.acquire() as conn:
        stored = await read_stream(conn, "lead-1")
    assert [msgspec.json.decode(e.data) for e in stored] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [e.event_id for e in stored] == [e.event_id for e in events]
    assert stored[0].decoded_metadata() == metadata
    assert [e.position for e in stored] == sorted(e.position for e in stored)
    # jsonb re-spaces the JSON text, so bodies compare decoded; everything else is identical.
    assert [_comparable(e) for e in stored] == [_comparable(e) for e in result.events]


def _comparable(recorded: RecordedEvent) -> tuple[object, ...]:
    return (
        *msgspec.structs.astuple(msgspec.structs.replace(recorded, data=b"", metadata=b"")),
        msgspec.json.decode(recorded.data),
        msgspec.json.decode(recorded.metadata),
    )


async def test_read_stream_cuts_at_version_position_and_time(pool: asyncpg.Pool) -> None:
    """A stream can be read up to a version, a global position or a point in time."""
    await append(pool, "lead-2", NO_STREAM, event(), event())
    await append(pool, "lead-2", 2, event())
    async with pool.acquire() as conn:
        everything = await read_stream(conn, "lead-2")
        assert len(everything) == 3
        assert len(await read_stream(conn, "lead-2", up_to_version=2)) == 2
        assert len(await read_stream(conn, "lead-2", after_version=2)) == 1
        second = everything[1]
        assert await read_stream(conn, "lead-2", up_to_position=second.position) == everything[:2]
        before = everything[0].recorded_at - timedelta(microseconds=1)
        assert await read_stream(conn, "lead-2", up_to_time=before) == []
        at_first_commit = await read_stream(conn, "lead-2", up_to_time=everything[0].recorded_at)
        assert at_first_commit == everything[:2]  # one transaction, one recorded_at
        assert await head_position(conn) == everything[-1].position


async def test_expected_version_clash_raises_concurrency_error(pool: asyncpg.Pool) -> None:
    """Writing from a stale or an impossible version is refused, and nothing is stored."""
    await append(pool, "lead-3", NO_STREAM, event(), event())
    with pytest.raises(ConcurrencyError) as stale:
        await append(pool, "lead-3", 1, event())
    assert stale.value.actual == 2
    with pytest.raises(ConcurrencyError):
        await append(pool, "lead-3", NO_STREAM, event())
    with pytest.raises(ConcurrencyError):
        await append(pool, "lead-3", 5, event())
    assert await append(pool, "lead-3", ANY_VERSION, event()) == [3]
    async with pool.acquire() as conn:
        assert len(await read_stream(conn, "lead-3")) == 3


async def test_concurrent_writers_at_one_version_exactly_one_wins(pool: asyncpg.Pool) -> None:
    """Two writers that both saw version 1: one commits, the other gets ConcurrencyError."""
    await append(pool, "lead-4", NO_STREAM, event())
    results = await asyncio.gather(
        *(append(pool, "lead-4", 1, event(w=w)) for w in range(2)), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["ConcurrencyError", "list"]
    async with pool.acquire() as conn:
        assert [e.stream_version for e in await read_stream(conn, "lead-4")] == [1, 2]


async def test_retrying_an_append_stores_nothing_twice(pool: asyncpg.Pool) -> None:
    """The same events appended again return the stored ones; a partial overlap is refused."""
    events = [event(n=1), event(n=2)]
    first = await append(pool, "lead-5", NO_STREAM, *events)
    async with pool.acquire() as conn, conn.transaction():
        retry = await append_events(
            conn, [StreamAppend(stream_id="lead-5", expected_version=NO_STREAM, events=events)]
        )
        # The caller's transaction is still usable after the swallowed clash.
        assert await conn.fetchval("SELECT count(*) FROM events") == 2
    assert retry.already_stored is True
    assert [e.stream_version for e in retry.events] == first
    with pytest.raises(DuplicateEventError):
        await append(pool, "lead-6", NO_STREAM, events[0], event())
    async with pool.acquire() as conn:
        assert len(await read_stream(conn, "lead-5")) == 2
        assert await read_stream(conn, "lead-6") == []


async def test_batch_append_writes_thousands_of_events_in_one_statement(
    pool: asyncpg.Pool,
) -> None:
    """5,000 events over 1,000 streams go in one append, numbered per stream."""
    appends = [
        StreamAppend(
            stream_id=f"lead-{n}",
            expected_version=NO_STREAM,
            events=[event(n=n, i=i) for i in range(5)],
            account_id=1,
        )
        for n in range(1000)
    ]
    async with pool.acquire() as conn, conn.transaction():
        result = await append_events(conn, appends)
    assert len(result.events) == 5000
    positions = [e.position for e in result.events]
    assert positions == sorted(positions)
    async with pool.acquire() as conn:
        versions = await conn.fetch(
            "SELECT stream_id, array_agg(stream_version ORDER BY position) AS v "
            "FROM events GROUP BY stream_id"
        )
    assert len(versions) == 1000
    assert all(row["v"] == [1, 2, 3, 4, 5] for row in versions)


async def test_one_stream_twice_in_an_append_is_refused(pool: asyncpg.Pool) -> None:
    """An append naming a stream twice is a caller bug, refused before anything is written."""
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(ValueError, match="appears twice"):
            await append_events(
                conn,
                [
                    StreamAppend(stream_id="lead-7", expected_version=0, events=[event()]),
                    StreamAppend(stream_id="lead-7", expected_version=0, events=[event()]),
                ],
            )


async def test_large_appends_go_by_copy_with_the_same_guarantees(pool: asyncpg.Pool) -> None:
    """Above the COPY threshold: positions, times and retries behave exactly as with INSERT."""
    events = [event(n=n) for n in range(COPY_THRESHOLD + 10)]
    async with pool.acquire() as conn, conn.transaction():
        first = await append_events(
            conn, [StreamAppend(stream_id="big", expected_version=NO_STREAM, events=events)]
        )
    async with pool.acquire() as conn:
        stored = await read_stream(conn, "big")
    assert [_comparable(e) for e in stored] == [_comparable(e) for e in first.events]
    assert len({e.recorded_at for e in stored}) == 1
    async with pool.acquire() as conn, conn.transaction():
        retry = await append_events(
            conn, [StreamAppend(stream_id="big", expected_version=NO_STREAM, events=events)]
        )
    assert retry.already_stored is True
    others = [event() for _ in range(COPY_THRESHOLD)]
    with pytest.raises(ConcurrencyError):
        await append(pool, "big", NO_STREAM, *others)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events") == len(events)


def _new_keys(*subjects: str) -> NewKeys:
    return NewKeys({1: {s: f"wrapped {s}".encode() for s in subjects}})


@pytest.mark.parametrize("count", [3, COPY_THRESHOLD + 4])
async def test_new_keys_are_stored_with_the_events_or_nothing_is(
    pool: asyncpg.Pool, count: int
) -> None:
    """Keys for new subjects go in with their events (by the INSERT itself, or before a COPY);
    when one of them had a key, no event goes in, the new keys are kept, and the transaction
    goes on: the same events then append without keys, and a stream clash still raises."""
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO subject_keys (subject_id, account_id, wrapped_key) VALUES ('had', 1, 'x')"
        )
        events = [event(n=n) for n in range(count)]
        appended = [StreamAppend(stream_id="s", expected_version=NO_STREAM, events=events)]
        async with conn.transaction():
            with logged_statements(conn) as statements:
                result = await append_events(
                    conn, appended, detect_retries=False, new_keys=_new_keys("a", "b")
                )
            assert len(result.events) == count
            if count < COPY_THRESHOLD:  # one statement for the keys and the events
                assert [s for s in statements if "subject_keys" in s] == [
                    s for s in statements if "INSERT INTO events" in s
                ]
        again = [StreamAppend(stream_id="t", expected_version=NO_STREAM, events=[event()])]
        async with conn.transaction():
            with pytest.raises(KeysExistedError):
                await append_events(
                    conn, again, detect_retries=False, new_keys=_new_keys("c", "had")
                )
            assert await conn.fetchval("SELECT count(*) FROM events WHERE stream_id = 't'") == 0
            assert (await append_events(conn, again, detect_retries=False)).events
        clash = [StreamAppend(stream_id="s", expected_version=NO_STREAM, events=[event()])]
        async with conn.transaction():
            with pytest.raises(ConcurrencyError):
                await append_events(conn, clash, detect_retries=False, new_keys=_new_keys("d"))
        keys = await conn.fetch("SELECT subject_id FROM subject_keys ORDER BY subject_id")
        assert [row["subject_id"] for row in keys] == ["a", "b", "c", "had"]
        assert await conn.fetchval("SELECT count(*) FROM events") == count + 1
        with pytest.raises(ValueError, match="fresh event ids"):
            await append_events(conn, again, new_keys=_new_keys("e"))


async def test_along_writes_go_in_with_the_events_or_not_at_all(pool: asyncpg.Pool) -> None:
    """An append's `along` writes run in its statement, read the events as appended, and run
    for nothing when a subject had a key after all; their own errors are theirs, not a clash of
    streams; they are refused without new keys and for appends a COPY writes."""
    along = Along(
        "noted AS (INSERT INTO noted SELECT event_id, $12::text FROM appended RETURNING 1)",
        ("seen",),
    )
    async with pool.acquire() as conn:
        await conn.execute("CREATE TEMP TABLE noted (event_id uuid, note text)")
        await conn.execute(
            "INSERT INTO subject_keys (subject_id, account_id, wrapped_key) VALUES ('had', 1, 'x')"
        )
        events = [event(n=n) for n in range(3)]
        appended = [StreamAppend(stream_id="s", expected_version=NO_STREAM, events=events)]
        async with conn.transaction():
            with logged_statements(conn) as statements:
                result = await append_events(
                    conn, appended, detect_retries=False, new_keys=_new_keys("a"), along=along
                )
        assert len([s for s in statements if "INSERT INTO events" in s]) == 1
        assert [s for s in statements if "noted" in s] == [
            s for s in statements if "INSERT INTO events" in s
        ]
        noted = await conn.fetch("SELECT event_id, note FROM noted ORDER BY event_id")
        assert [(r["event_id"], r["note"]) for r in noted] == sorted(
            (e.event_id, "seen") for e in result.events
        )
        again = [StreamAppend(stream_id="t", expected_version=NO_STREAM, events=[event()])]
        async with conn.transaction():
            with pytest.raises(KeysExistedError):
                await append_events(
                    conn, again, detect_retries=False, new_keys=_new_keys("had"), along=along
                )
        assert await conn.fetchval("SELECT count(*) FROM noted") == len(events)
        await conn.execute("CREATE TEMP TABLE once (note text PRIMARY KEY)")
        twice = Along(
            "noted AS (INSERT INTO once SELECT $12::text FROM appended, generate_series(1, 2))",
            ("x",),
        )
        async with conn.transaction():
            with pytest.raises(asyncpg.UniqueViolationError):  # not a clash of streams
                await append_events(
                    conn, again, detect_retries=False, new_keys=_new_keys("t1"), along=twice
                )
        with pytest.raises(ValueError, match="along"):
            await append_events(conn, again, detect_retries=False, along=along)
        many = [event(n=n) for n in range(COPY_THRESHOLD)]
        big = [StreamAppend(stream_id="u", expected_version=NO_STREAM, events=many)]
        with pytest.raises(ValueError, match="along"):
            await append_events(
                conn, big, detect_retries=False, new_keys=_new_keys("u"), along=along
            )
