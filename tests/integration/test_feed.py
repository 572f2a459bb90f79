"""The global feed: every committed event exactly once, even when commits come late."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from contextlib import aclosing

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import (
    ANY_VERSION,
    NO_STREAM,
    NewEvent,
    RecordedEvent,
    StreamAppend,
)
from lead_ledger.ledger.feed import follow_feed
from lead_ledger.ledger.locks import lock_campaigns
from lead_ledger.ledger.store import append_events, read_feed


def event(**body: object) -> NewEvent:
    return NewEvent(event_id=uuid.uuid4(), type="noted", data=msgspec.json.encode(body))


async def _read_at_least(
    conn: Connection, count: int, account_id: int | None = None
) -> list[RecordedEvent]:
    """The fence is cluster-wide: a transaction in another database (another test run, a
    benchmark, autovacuum) can hold it back for a moment. Wait for it, never for long."""
    async with asyncio.timeout(30):
        while len(seen := await read_feed(conn, account_id=account_id)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return seen


async def test_a_late_commit_is_not_skipped(pool: asyncpg.Pool) -> None:
    """An event with a lower position that commits later is read after, never passed over."""
    early = await pool.acquire()
    late_tx = early.transaction()
    await late_tx.start()
    try:
        await append_events(
            early, [StreamAppend(stream_id="a", expected_version=NO_STREAM, events=[event()])]
        )
        async with pool.acquire() as conn, conn.transaction():
            await append_events(
                conn, [StreamAppend(stream_id="b", expected_version=NO_STREAM, events=[event()])]
            )
        async with pool.acquire() as reader:
            # "b" has committed, but "a" (lower position) may still commit: hold "b" back.
            assert await read_feed(reader, after=0) == []
            await late_tx.commit()
            seen = await _read_at_least(reader, 2)
        assert [e.stream_id for e in seen] == ["a", "b"]
        assert seen[0].position < seen[1].position
        async with pool.acquire() as reader:
            assert await read_feed(reader, after=seen[0].position) == seen[1:]
            assert await read_feed(reader, after=seen[1].position) == []
    finally:
        await pool.release(early)


async def test_feed_can_be_scoped_to_an_account(pool: asyncpg.Pool) -> None:
    """An account's feed shows its own streams only."""
    async with pool.acquire() as conn, conn.transaction():
        await append_events(
            conn,
            [
                StreamAppend(stream_id="x-1", expected_version=0, events=[event()], account_id=1),
                StreamAppend(stream_id="x-2", expected_version=0, events=[event()], account_id=2),
            ],
        )
    async with pool.acquire() as conn:
        mine = await _read_at_least(conn, 1, account_id=2)
    assert [e.stream_id for e in mine] == ["x-2"]


async def test_reader_sees_every_event_once_under_concurrent_writers(pool: asyncpg.Pool) -> None:
    """8 writers on 4 campaigns, late commits included; a follower sees all, once, in order."""
    writers, rounds = 8, 30
    rng = random.Random(20261122)  # noqa: S311 - fixed seed: the interleaving varies, the workload does not
    plans = [
        [(rng.randint(1, 3), rng.random() < 0.2, rng.random() * 0.004) for _ in range(rounds)]
        for _ in range(writers)
    ]
    expected = sum(n for plan in plans for n, _, _ in plan)

    async def write(writer: int) -> None:
        campaign = writer % 4
        for i, (count, two_campaigns, pause) in enumerate(plans[writer]):
            async with pool.acquire() as conn, conn.transaction():
                other = (campaign + 1) % 4
                # Writers touching two campaigns lock both, lowest id first.
                await lock_campaigns(conn, [campaign, other] if two_campaigns else [campaign])
                stream = f"lead-c{campaign}-{i % 5}"
                await append_events(
                    conn,
                    [
                        StreamAppend(
                            stream_id=stream,
                            expected_version=ANY_VERSION,
                            events=[event(writer=writer, i=i, n=n) for n in range(count)],
                        )
                    ],
                )
                await asyncio.sleep(pause)  # hold the transaction open: commits arrive late

    seen: list[tuple[str, int, uuid.UUID]] = []

    async def follow() -> None:
        # aclosing: the generator must stop listening before its connection goes back.
        async with pool.acquire() as conn, aclosing(follow_feed(conn, batch_size=50)) as feed:
            async for recorded in feed:
                seen.append((recorded.stream_id, recorded.stream_version, recorded.event_id))
                if len(seen) >= expected:
                    return

    reader = asyncio.create_task(follow())
    await asyncio.gather(*(write(w) for w in range(writers)))
    await asyncio.wait_for(reader, timeout=30)

    assert len(seen) == expected
    assert len({event_id for _, _, event_id in seen}) == expected
    versions: dict[str, list[int]] = defaultdict(list)
    for stream, version, _ in seen:
        versions[stream].append(version)
    for stream, got in versions.items():
        assert got == list(range(1, len(got) + 1)), stream
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events") == expected


async def test_a_cursor_past_the_head_does_not_replay_the_feed(pool: asyncpg.Pool) -> None:
    """A stale or made-up position resumes after the last event before it, not from zero."""
    async with pool.acquire() as conn, conn.transaction():
        await append_events(
            conn, [StreamAppend(stream_id="s-1", expected_version=0, events=[event(), event()])]
        )
    async with pool.acquire() as conn:
        everything = await _read_at_least(conn, 2)
        assert await read_feed(conn, after=everything[-1].position + 1000) == []
