"""A deliverer woken by a stream of commits looks for due subscriptions a few times, not once
per commit."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

import asyncpg

from lead_ledger.ledger.feed import CHANNEL
from lead_ledger.service.subscriptions.delivery import Deliverer, Policy


class CountingDeliverer(Deliverer):
    """A real deliverer that counts its passes."""

    passes = 0

    async def pass_once(self) -> bool:
        self.passes += 1
        return await super().pass_once()


async def _never_posted(url: str, body: bytes, headers: Mapping[str, str]) -> int:
    raise AssertionError("nothing is subscribed: nothing is sent")


async def test_a_stream_of_notifications_is_answered_by_paced_passes(pool: asyncpg.Pool) -> None:
    """Forty notifications over ~0.4 s wake a deliverer paced at 0.25 s a handful of times."""
    policy = Policy(poll_seconds=30, min_pass_seconds=0.25)
    deliverer = CountingDeliverer(
        pool, _never_posted, owner="paced", clock=lambda: datetime.now(UTC), policy=policy
    )
    stop = asyncio.Event()
    running = asyncio.create_task(deliverer.run(stop))
    await asyncio.sleep(0.2)  # the first pass, then asleep until notified
    first = deliverer.passes
    async with pool.acquire() as conn:
        for _ in range(40):
            await conn.execute(f"NOTIFY {CHANNEL}")
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.4)
    stop.set()
    await running
    woken = deliverer.passes - first
    assert first == 1
    assert 1 <= woken <= 5, woken
