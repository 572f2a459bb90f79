"""Webhook delivery across real `lead-ledger serve` processes: two of them share one
subscription by its lease, and when the one delivering is killed with SIGKILL mid-delivery
(while the receiver answers 500 for a while), the other resumes from the checkpoint. Every
lead event of 1,000 inserts, updates and archives arrives at least once, none missing, in feed
order, each batch signed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import asyncpg
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from lead_ledger.service.reads import feed_page
from tests.api.test_native import (
    CAMPAIGN_A,
    KEY_A,
    OTHER_CAMPAIGN_A,
    A,
    ctx,
    insert_lead,
    make_account,
    update_lead,
)
from tests.api.test_subscriptions import archive_and_delete
from tests.support import Served, serve_process, stop, until_ready

INSERTS, UPDATES, ARCHIVES = 500, 300, 100  # 1,000 commands; an archive is two events
# Inserted after the kill: whatever the killed process had delivered by then (it may have
# delivered everything written before), these only the other process can deliver.
AFTER_KILL = 10
FAILING_SECONDS = 3.0  # the receiver's 500s, from its first request


@dataclass
class Receiver:
    """Records every 2xx-answered batch; answers 500 for FAILING_SECONDS after the first."""

    secret: str = ""
    first_at: float | None = None
    batches: list[list[int]] = field(default_factory=list)
    refused: int = 0
    unsigned: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Ledger-Signature", "")):
            self.unsigned += 1
            return web.Response(status=401)
        now = time.monotonic()
        self.first_at = self.first_at or now
        if now - self.first_at < FAILING_SECONDS:
            self.refused += 1
            return web.Response(status=500)
        self.batches.append([e["position"] for e in msgspec.json.decode(body)["events"]])
        return web.Response(status=200)

    def positions(self) -> list[int]:
        """Every position received, in arrival order, repeats included."""
        return [p for batch in self.batches for p in batch]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield found, str(server.make_url("/hook"))
    finally:
        await server.close()


async def write_events(pool: asyncpg.Pool) -> None:
    """1,000 commands over two campaigns: inserts, then updates, then archives (each an archive
    and a delete), one transaction each, as requests would write them."""
    for lead_id in range(1, INSERTS + 1):
        campaign = CAMPAIGN_A if lead_id % 2 else OTHER_CAMPAIGN_A
        await insert_lead(pool, A, campaign, lead_id, phone_numbers=[f"98{lead_id:08d}"])
    for lead_id in range(1, UPDATES + 1):
        await update_lead(pool, A, lead_id, ctx(A), first_name=f"n{lead_id}")
    for lead_id in range(INSERTS - ARCHIVES + 1, INSERTS + 1):
        await archive_and_delete(pool, lead_id)


def lease_holder(owner: str | None, servers: list[Served]) -> Served | None:
    """The server whose process id is in the lease owner (host:pid:app)."""
    if owner is None:
        return None
    pid = int(owner.split(":")[1])
    return next((s for s in servers if s.process.pid == pid), None)


async def test_killed_process_hands_over_and_every_event_arrives_in_order(
    database_url: str, pool: asyncpg.Pool, receiver: tuple[Receiver, str]
) -> None:
    """Two serve processes, a receiver failing at first, the delivering process SIGKILLed
    mid-delivery, events written after: every lead event arrives, at least once, in feed
    order, signed, and the other process holds the lease."""
    found, url = receiver
    await make_account(pool, A, KEY_A, {CAMPAIGN_A: "north", OTHER_CAMPAIGN_A: "south"}, "IN")
    servers = [
        serve_process(database_url, LEDGER_CALLBACK_ALLOW_PRIVATE="1"),
        serve_process(database_url, LEDGER_CALLBACK_ALLOW_PRIVATE="1"),
    ]
    try:
        for served in servers:
            await until_ready(served)
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                f"{servers[0].base_url}/v1/subscriptions",
                json={"url": url},
                headers={"Authorization": f"Bearer {KEY_A}"},
            )
            assert response.status == 201, await response.text()
            found.secret = (await response.json())["secret"]
        writing = asyncio.create_task(write_events(pool))
        # Mid-delivery: after the 500s, once some batches are in and while more are written.
        deadline = time.monotonic() + 120
        while len(set(found.positions())) < 200:
            assert time.monotonic() < deadline, "delivery never got going"
            await asyncio.sleep(0.05)
        owner = await pool.fetchval("SELECT lease_owner FROM subscription_delivery")
        doomed = lease_holder(owner, servers)
        assert doomed is not None, owner
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait()
        survivor = next(s for s in servers if s is not doomed)
        await writing
        for lead_id in range(INSERTS + 1, INSERTS + AFTER_KILL + 1):
            await insert_lead(pool, A, CAMPAIGN_A, lead_id, phone_numbers=[f"98{lead_id:08d}"])
        async with pool.acquire() as conn:
            page = await feed_page(conn, A, after=0, limit=1000)
            expected = [e.position for e in page.events if e.stream_id.startswith("lead-")]
            while page.events and len(page.events) == 1000:
                page = await feed_page(conn, A, after=page.next_after, limit=1000)
                expected += [e.position for e in page.events if e.stream_id.startswith("lead-")]
        assert len(expected) == INSERTS + UPDATES + 2 * ARCHIVES + AFTER_KILL
        deadline = time.monotonic() + 180  # the dead lease expires within 30 s
        while set(found.positions()) != set(expected):
            assert time.monotonic() < deadline, (
                f"{len(set(expected) - set(found.positions()))} events never arrived"
            )
            await asyncio.sleep(0.2)
        assert lease_holder(
            await pool.fetchval("SELECT lease_owner FROM subscription_delivery"), servers
        ) in (survivor, None)
        servers.remove(doomed)
    finally:
        for served in servers:
            if served.process.poll() is None:
                stop(served)
    # At least once: a batch may come again after the kill, but none out of order.
    assert list(dict.fromkeys(found.positions())) == expected
    order = {position: n for n, position in enumerate(expected)}
    assert all(batch == sorted(batch, key=order.__getitem__) for batch in found.batches)
    assert all(1 <= len(batch) <= 100 for batch in found.batches)
    assert found.refused > 0
    assert found.unsigned == 0
