"""Webhook subscriptions through the real app: the routes (native key, account-scoped,
problem+json), and delivery to a real HTTP receiver: in feed order, signed, retried under one
delivery id, paused and resumed, suspended after a day of failures, refused for private targets,
never sent again by a rebuild."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
import structlog.testing
from aiohttp import web
from aiohttp.test_utils import TestServer

from lead_ledger.api import subscriptions
from lead_ledger.api.app import create_app
from lead_ledger.api.keys import CLOCK
from lead_ledger.ledger.events import LeadArchived, LeadDeleted, LeadEvent, stream_of_lead
from lead_ledger.ledger.lead import RowTimes, decide_archive, fold
from lead_ledger.ledger.opening import open_pairs
from lead_ledger.ledger.store import read_stream
from lead_ledger.projections.rebuild import rebuild
from lead_ledger.service.subscriptions import delivery
from lead_ledger.service.subscriptions.delivery import Deliverer, Policy
from lead_ledger.settings import Settings
from tests.api.test_edge import account_with_every_key
from tests.api.test_hostile_inputs import ADMIN
from tests.api.test_native import (
    CAMPAIGN_A,
    CAMPAIGN_B,
    KEY_A,
    KEY_B,
    OTHER_CAMPAIGN_A,
    A,
    B,
    ctx,
    insert_lead,
    make_account,
    update_lead,
    write,
)
from tests.api.test_schemathesis import fuzz
from tests.support import Client

SUBSCRIPTIONS = "/v1/subscriptions"
SECRET = "a-secret-of-enough-length"
FAST = Policy(
    lease_seconds=5, poll_seconds=0.1, backoff_seconds=0.05, max_backoff_seconds=0.2,
    allow_private=True,
)  # fmt: skip
DOCS = Path(__file__).parents[2] / "docs" / "subscriptions.md"


class Clock:
    """The app's clock, moved by the test: a day of failures without a day of waiting."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Receiver:
    """A real HTTP server that records every POST and answers `status` (500 while failing)."""

    url: str = ""
    status: int = 200
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def entries(self) -> list[dict[str, Any]]:
        """Every event received with a 2xx answer, in the order received."""
        return [
            e for h, b in self.posts if h["ok"] == "1" for e in msgspec.json.decode(b)["events"]
        ]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers) | {"ok": "1" if self.status < 300 else "0"}
        self.posts.append((headers, body))
        return web.Response(status=self.status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    found.url = str(server.make_url("/hook"))
    try:
        yield found
    finally:
        await server.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def api(
    database_url: str,
    pool: asyncpg.Pool,
    clock: Clock,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> Client:
    """The real app (its subscription routes and delivery task) with a fast delivery policy, on
    accounts A (campaigns 11, 12) and B (21); private targets allowed (the receiver is local)."""
    await make_account(pool, A, KEY_A, {CAMPAIGN_A: "north", OTHER_CAMPAIGN_A: "south"}, "IN")
    await make_account(pool, B, KEY_B, {CAMPAIGN_B: "west"}, "IN")
    settings = Settings(db_pool_min=1, db_pool_max=8, callback_allow_private=True)
    app = create_app(settings, database_url)
    app[subscriptions.POLICY] = FAST
    app[CLOCK] = clock.__call__
    return await aiohttp_client(app)


def auth(key: str = KEY_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def subscribe(api: Client, url: str, key: str = KEY_A, **body: object) -> dict[str, Any]:
    response = await api.post(SUBSCRIPTIONS, json={"url": url} | body, headers=auth(key))
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def patch(api: Client, subscription_id: int, **body: object) -> dict[str, Any]:
    response = await api.patch(f"{SUBSCRIPTIONS}/{subscription_id}", json=body, headers=auth())
    assert response.status == 200, await response.text()
    found: dict[str, Any] = await response.json()
    return found


async def until(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.05)


async def insert_many(
    pool: asyncpg.Pool, first: int, count: int, campaign: int = CAMPAIGN_A
) -> None:
    for lead_id in range(first, first + count):
        await insert_lead(
            pool, A, campaign, lead_id, phone_numbers=[f"98765{lead_id:05d}"], first_name="Asha"
        )


async def feed(api: Client, key: str = KEY_A) -> list[dict[str, Any]]:
    response = await api.get("/v1/events", params={"limit": "1000"}, headers=auth(key))
    assert response.status == 200
    events: list[dict[str, Any]] = (await response.json())["events"]
    return events


def lead_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["stream_id"].startswith("lead-")]


# --- routes ---------------------------------------------------------------------------------------


async def test_created_subscription_shows_its_secret_once_and_stores_it_sealed(
    api: Client, owner_pool: asyncpg.Pool
) -> None:
    """201 with a made secret; reads never show it; neither the log nor any table holds it."""
    created = await subscribe(api, "https://example.com/hook", campaign="north")
    assert len(created["secret"]) >= 40
    assert created["state"] == "active"
    assert created["campaign"] == "north"
    assert created["campaign_id"] == CAMPAIGN_A
    assert created["event_types"] is None
    one = await api.get(f"{SUBSCRIPTIONS}/{created['subscription_id']}", headers=auth())
    shown = await one.json()
    assert "secret" not in shown
    assert shown == {k: v for k, v in created.items() if k != "secret"}
    listed = await (await api.get(SUBSCRIPTIONS, headers=auth())).json()
    assert listed == {"subscriptions": [shown], "next_after": None}
    secret = created["secret"].encode()
    async with owner_pool.acquire() as conn:
        for table in ("events", "subscriptions", "subscription_secrets", "subscription_delivery"):
            query = f"SELECT coalesce(string_agg(t::text, ''), '') FROM {table} t"  # noqa: S608
            dump: str = await conn.fetchval(query)
            assert created["secret"] not in dump, table
        sealed: bytes = await conn.fetchval("SELECT sealed FROM subscription_secrets")
    assert secret not in sealed


async def test_a_given_secret_is_kept_and_types_are_checked(api: Client) -> None:
    """A secret given is the one shown; event_types must be lead event types."""
    created = await subscribe(
        api, "https://example.com/hook", secret=SECRET, event_types=["LeadUpdated", "LeadInserted"]
    )
    assert created["secret"] == SECRET
    assert created["event_types"] == ["LeadInserted", "LeadUpdated"]


@pytest.mark.parametrize(
    ("body", "member"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "https://example.com/x", "event_types": ["CampaignCreated"]}, "event_types"),
        ({"url": "https://example.com/x", "event_types": []}, "event_types"),
        ({"url": "https://example.com/x", "campaign": "nowhere"}, "campaign"),
        ({"url": "https://example.com/x", "secret": "short"}, "secret"),
        ({"url": "https://example.com/x", "colour": "red"}, None),
        ({"url": 7}, "url"),
        ({}, None),
    ],
)
async def test_bad_bodies_are_problems(api: Client, body: object, member: str | None) -> None:
    """Every refused body is a 400 problem naming what is wrong, and nothing is created."""
    response = await api.post(SUBSCRIPTIONS, json=body, headers=auth())
    assert response.status == 400, await response.text()
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    if member is not None:
        assert member in (problem.get("field") or "") + problem["detail"]
    listed = await (await api.get(SUBSCRIPTIONS, headers=auth())).json()
    assert listed["subscriptions"] == []


async def test_malformed_json_unknown_ids_and_empty_patches_are_problems(api: Client) -> None:
    """Broken JSON is a 400, an id that is none a 404, a patch that changes nothing a 400."""
    broken = await api.post(SUBSCRIPTIONS, data=b"{", headers=auth())
    assert broken.status == 400
    for path in ("/999", "/abc", "/999/deliveries"):
        missing = await api.get(f"{SUBSCRIPTIONS}{path}", headers=auth())
        assert missing.status == 404, path
        assert missing.content_type == "application/problem+json"
    created = await subscribe(api, "https://example.com/hook")
    empty = await api.patch(
        f"{SUBSCRIPTIONS}/{created['subscription_id']}", json={}, headers=auth()
    )
    assert empty.status == 400
    bad_state = await api.patch(
        f"{SUBSCRIPTIONS}/{created['subscription_id']}", json={"state": "suspended"}, headers=auth()
    )
    assert bad_state.status == 400
    unauthorised = await api.get(SUBSCRIPTIONS)
    assert unauthorised.status == 401


async def test_another_accounts_subscription_is_a_missing_one(api: Client) -> None:
    """B cannot see, change, delete or read the attempts of A's subscription: 404 as missing."""
    created = await subscribe(api, "https://example.com/hook")
    path = f"{SUBSCRIPTIONS}/{created['subscription_id']}"
    for method, suffix, body in (
        ("GET", "", None),
        ("GET", "/deliveries", None),
        ("PATCH", "", {"state": "paused"}),
        ("DELETE", "", None),
    ):
        response = await api.request(method, path + suffix, json=body, headers=auth(KEY_B))
        assert response.status == 404, (method, suffix)
        assert (await response.json())["detail"] == f"no subscription {created['subscription_id']}"
    listed = await (await api.get(SUBSCRIPTIONS, headers=auth(KEY_B))).json()
    assert listed["subscriptions"] == []
    still = await (await api.get(path, headers=auth())).json()
    assert still["state"] == "active"


async def test_changes_and_deletion_are_events(api: Client, pool: asyncpg.Pool) -> None:
    """PATCH and DELETE record events on the subscription's stream; a deleted one is gone."""
    created = await subscribe(api, "https://example.com/hook")
    sid = created["subscription_id"]
    changed = await patch(api, sid, url="https://example.org/new", event_types=["LeadDeleted"])
    assert changed["url"] == "https://example.org/new"
    assert changed["event_types"] == ["LeadDeleted"]
    assert (await patch(api, sid, state="paused"))["state"] == "paused"
    assert (await patch(api, sid, event_types=None))["event_types"] is None
    assert (await api.delete(f"{SUBSCRIPTIONS}/{sid}", headers=auth())).status == 204
    assert (await api.get(f"{SUBSCRIPTIONS}/{sid}", headers=auth())).status == 404
    async with pool.acquire() as conn:
        types = [e.type for e in await read_stream(conn, f"subscription-{sid}")]
    assert types == [
        "SubscriptionCreated",
        "SubscriptionChanged",
        "SubscriptionPaused",
        "SubscriptionChanged",
        "SubscriptionDeleted",
    ]


async def test_private_targets_are_refused_at_creation_and_at_delivery(
    database_url: str,
    pool: asyncpg.Pool,
    receiver: Receiver,
    clock: Clock,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    """Without LEDGER_CALLBACK_ALLOW_PRIVATE a loopback URL is a 400; one that became private
    after creation is never POSTed to: the subscription is suspended, recorded by an event."""
    await make_account(pool, A, KEY_A, {CAMPAIGN_A: "north"}, "IN")
    app = create_app(Settings(db_pool_min=1, db_pool_max=8), database_url)
    api = await aiohttp_client(app)
    for url in (receiver.url, "http://10.0.0.1/hook", "http://[::1]/hook"):
        response = await api.post(SUBSCRIPTIONS, json={"url": url}, headers=auth())
        assert response.status == 400, url
        assert "LEDGER_CALLBACK_ALLOW_PRIVATE=1" in (await response.json())["detail"]
    # A host no resolver takes (a label over 63 characters) is a 400 as well, never a 500.
    long_label = f"https://{'a' * 70}.example.com/hook"
    response = await api.post(SUBSCRIPTIONS, json={"url": long_label}, headers=auth())
    assert response.status == 400
    assert (await response.json())["field"] == "url"
    # Made while private targets were allowed (through the service), delivered by processes
    # that do not allow them: the app's and this one.
    sid = await subscribe_via(pool, receiver)
    await insert_many(pool, 1, 3)
    posted: list[str] = []

    async def post(url: str, _body: bytes, _headers: object) -> int:
        posted.append(url)
        return 200

    deliverer = Deliverer(
        pool, post, owner="strict", clock=clock, policy=Policy(allow_private=False)
    )
    for _ in range(3):
        await deliverer.pass_once()
    await until_state(api, sid, "suspended")
    assert posted == []
    assert receiver.posts == []
    async with pool.acquire() as conn:
        (suspended,) = [
            e
            for e in await read_stream(conn, f"subscription-{sid}")
            if e.type == "SubscriptionSuspended"
        ]
    assert b"LEDGER_CALLBACK_ALLOW_PRIVATE" in suspended.data


async def test_every_route_is_in_the_api_document(api: Client) -> None:
    """/openapi.json lists every subscription route and method."""
    document = await (await api.get("/openapi.json")).json()
    paths = document["paths"]
    assert set(paths[SUBSCRIPTIONS]) >= {"get", "post"}
    assert set(paths[f"{SUBSCRIPTIONS}/{{id}}"]) >= {"get", "patch", "delete"}
    assert "get" in paths[f"{SUBSCRIPTIONS}/{{id}}/deliveries"]


# --- delivery -------------------------------------------------------------------------------------


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-Ledger-Signature"])


async def test_events_arrive_in_feed_order_signed_as_the_feed_shows_them(
    api: Client, pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """250 inserts and 50 updates arrive once each in feed order, in signed batches of at most
    100, each entry exactly as GET /v1/events shows it (personal data opened)."""
    created = await subscribe(api, receiver.url)
    await insert_many(pool, 1, 250)
    for lead_id in range(1, 51):
        await update_lead(pool, A, lead_id, ctx(A), first_name="Ravi")
    expected = lead_entries(await feed(api))
    assert len(expected) == 300
    await until(lambda: len(receiver.entries()) >= 300)
    assert receiver.entries() == expected
    assert expected[0]["data"]["fields"]["first_name"] == "Asha"
    for headers, body in receiver.posts:
        assert verify(created["secret"], headers, body)
        assert not verify("another secret", headers, body)
        assert headers["X-Ledger-Subscription"] == str(created["subscription_id"])
        decoded = msgspec.json.decode(body)
        assert decoded["delivery_id"] == headers["X-Ledger-Delivery"]
        assert 1 <= len(decoded["events"]) <= 100
    # Moved once the 2xx is recorded, a moment after the receiver has the batch.
    await until_checkpoint(api, created["subscription_id"], expected[-1]["position"])


async def test_a_failing_receiver_gets_the_same_batch_again_then_everything(
    api: Client, pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """While the receiver answers 500 the checkpoint stays; retries carry the same delivery id
    and events; once it answers 200 every event arrives, and the attempts are listed."""
    created = await subscribe(api, receiver.url)
    sid = created["subscription_id"]
    receiver.status = 500
    await insert_many(pool, 1, 30)
    await until(lambda: len(receiver.posts) >= 3)
    failed = receiver.posts[:3]
    assert len({h["X-Ledger-Delivery"] for h, _ in failed}) == 1
    assert len({msgspec.json.encode(msgspec.json.decode(b)["events"]) for _, b in failed}) == 1
    stuck = await (await api.get(f"{SUBSCRIPTIONS}/{sid}", headers=auth())).json()
    assert stuck["checkpoint"] == created["checkpoint"]
    assert stuck["failures"] >= 3
    receiver.status = 200
    await until(lambda: len(receiver.entries()) >= 30)
    assert receiver.entries() == lead_entries(await feed(api))
    ok = [h for h, _ in receiver.posts if h["ok"] == "1"]
    assert ok[0]["X-Ledger-Delivery"] == failed[0][0]["X-Ledger-Delivery"]
    attempts = await (await api.get(f"{SUBSCRIPTIONS}/{sid}/deliveries", headers=auth())).json()
    statuses = [a["status_code"] for a in attempts["attempts"]]
    assert 500 in statuses
    assert statuses[0] == 200
    assert all(a["latency_ms"] >= 0 for a in attempts["attempts"])
    recovered = await (await api.get(f"{SUBSCRIPTIONS}/{sid}", headers=auth())).json()
    assert recovered["failures"] == 0
    assert recovered["failing_since"] is None


async def test_a_paused_subscription_catches_up_on_resume(
    api: Client, pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """Nothing is sent while paused; on resume every event since the pause arrives, in order."""
    sid = (await subscribe(api, receiver.url))["subscription_id"]
    await insert_many(pool, 1, 5)
    await until(lambda: len(receiver.entries()) >= 5)
    await patch(api, sid, state="paused")
    await insert_many(pool, 6, 20)
    await asyncio.sleep(1)
    assert len(receiver.entries()) == 5
    assert (await patch(api, sid, state="active"))["state"] == "active"
    await until(lambda: len(receiver.entries()) >= 25)
    assert receiver.entries() == lead_entries(await feed(api))


async def test_a_day_of_failures_suspends_until_resumed(
    api: Client, pool: asyncpg.Pool, receiver: Receiver, clock: Clock
) -> None:
    """Failures for 24 hours (by the app's clock) record SubscriptionSuspended and stop the
    attempts; resuming delivers everything from the checkpoint."""
    sid = (await subscribe(api, receiver.url))["subscription_id"]
    receiver.status = 503
    await insert_many(pool, 1, 3)
    await until(lambda: len(receiver.posts) >= 2)
    found = await (await api.get(f"{SUBSCRIPTIONS}/{sid}", headers=auth())).json()
    assert found["state"] == "active"
    clock.now += timedelta(hours=24, seconds=1)
    await until_state(api, sid, "suspended")
    count = len(receiver.posts)
    await asyncio.sleep(0.5)
    assert len(receiver.posts) == count
    async with pool.acquire() as conn:
        events = await read_stream(conn, f"subscription-{sid}")
    suspended = msgspec.json.decode(events[-1].data)
    assert suspended["type"] == "SubscriptionSuspended"
    assert suspended["error"] == "answered 503"
    assert suspended["attempts"] >= 2
    receiver.status = 200
    await patch(api, sid, state="active")
    await until(lambda: len(receiver.entries()) >= 3)
    assert receiver.entries() == lead_entries(await feed(api))


async def test_a_failed_deliverys_log_line_holds_no_url(api: Client, pool: asyncpg.Pool) -> None:
    """A target that does not answer: the attempt's record says why, quoting the client's
    message, while its log line names only the kind of failure, not the URL's credentials,
    query or host (docs/subscriptions.md)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://user:s3cretpw@127.0.0.1:{port}/hook?token=abc123"
    sid = (await subscribe(api, url))["subscription_id"]
    with structlog.testing.capture_logs() as logs:
        await insert_many(pool, 1, 1)
        await until(lambda: any(e["event"] == "subscription_attempted" for e in logs))
    attempted = [e for e in logs if e["event"] == "subscription_attempted"]
    assert attempted[0]["error"] == "ClientConnectorError"
    secrets = ("s3cretpw", "abc123", str(port))
    assert not [e for e in logs if any(secret in str(e) for secret in secrets)]
    recorded = await pool.fetchval(
        "SELECT error FROM subscription_attempts WHERE subscription_id = $1 LIMIT 1", sid
    )
    assert str(port) in recorded


async def until_checkpoint(api: Client, sid: int, position: int) -> None:
    for _ in range(300):
        found = await (await api.get(f"{SUBSCRIPTIONS}/{sid}", headers=auth())).json()
        if found["checkpoint"] == position:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"subscription {sid} never reached {position}")


async def until_state(api: Client, sid: int, state: str) -> None:
    for _ in range(300):
        found = await (await api.get(f"{SUBSCRIPTIONS}/{sid}", headers=auth())).json()
        if found["state"] == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"subscription {sid} never became {state}")


async def test_campaign_and_types_choose_what_is_sent(
    api: Client, pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """A subscription to one campaign's updates gets those only, not inserts nor the other
    campaign's events nor another account's."""
    await subscribe(api, receiver.url, campaign="south", event_types=["LeadUpdated"])
    await insert_many(pool, 1, 3, CAMPAIGN_A)
    await insert_many(pool, 4, 3, OTHER_CAMPAIGN_A)
    await insert_lead(pool, B, CAMPAIGN_B, 99, phone_numbers=["9876500099"])
    for lead_id in (1, 4, 5):
        await update_lead(pool, A, lead_id, ctx(A), first_name="Ravi")
    await until(lambda: len(receiver.entries()) >= 2)
    await asyncio.sleep(0.5)
    assert [(e["type"], e["stream_id"]) for e in receiver.entries()] == [
        ("LeadUpdated", "lead-4"),
        ("LeadUpdated", "lead-5"),
    ]


async def test_events_after_an_erasure_arrive_with_the_erased_fields_null(
    api: Client, pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """A lead erased before its events are delivered arrives erased, then LeadErased, which
    tells the receiver to delete its copy; archives and deletes arrive too."""
    sid = (await subscribe(api, receiver.url))["subscription_id"]
    await patch(api, sid, state="paused")
    await insert_many(pool, 1, 2)
    await archive_and_delete(pool, 2)
    erased = await api.post("/v1/erasures", json={"lead_id": 1}, headers=auth())
    assert erased.status in (200, 201), await erased.text()
    await patch(api, sid, state="active")
    await until(lambda: any(e["type"] == "LeadErased" for e in receiver.entries()))
    entries = receiver.entries()
    assert [e["type"] for e in entries] == [
        "LeadInserted", "LeadInserted", "LeadArchived", "LeadDeleted", "LeadErased"
    ]  # fmt: skip
    inserted = entries[0]["data"]
    assert inserted["erased"] is True
    assert inserted["fields"]["first_name"] is None
    assert not inserted["fields"].get("phone_numbers")
    assert entries[1]["data"]["fields"]["first_name"] == "Asha"
    assert entries == lead_entries(await feed(api))


async def archive_and_delete(pool: asyncpg.Pool, lead_id: int) -> None:
    """Archive a lead and safe-delete it, as Vicidial's archive call does."""
    async with pool.acquire() as conn:
        stored = await open_pairs(conn, await read_stream(conn, stream_of_lead(lead_id)))
    state = fold(e for _, e in stored if isinstance(e, LeadEvent))
    assert state is not None
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT entry_at, modified_at FROM leads WHERE lead_id = $1", lead_id
        )
    assert row is not None
    times = RowTimes(entry_at=row["entry_at"], modified_at=row["modified_at"])
    outcome = decide_archive(state, insert=True, update=False, delete=True, times=times)
    events = [e for e in outcome.events if isinstance(e, LeadArchived | LeadDeleted)]
    await write(pool, ctx(A, "vicidial"), stream_of_lead(lead_id), state.version, events, A)


async def test_two_processes_share_the_work_and_a_dead_ones_lease_expires(
    pool: asyncpg.Pool, api: Client, receiver: Receiver, clock: Clock
) -> None:
    """Two deliverers on one database: one holds a subscription at a time, events arrive in
    order; when the holder dies (its lease left behind), the other takes over after expiry."""
    del api  # the app delivers too: three processes in all
    created = await subscribe_via(pool, receiver)
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [
        asyncio.create_task(
            Deliverer(pool, poster_of(receiver), owner=f"p{n}", clock=clock, policy=FAST).run(stop)
        )
        for n, stop in enumerate(stops)
    ]
    try:
        await insert_many(pool, 1, 120)
        await until(lambda: len(delivered_positions(receiver)) >= 120)
        async with pool.acquire() as conn:
            # A holder that died: its lease is left, unexpired for a moment.
            await conn.execute(
                "UPDATE subscription_delivery SET lease_owner = 'dead',"
                " lease_until = now() + interval '1 second'"
            )
        await insert_many(pool, 121, 30)
        await until(lambda: len(delivered_positions(receiver)) >= 150)
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks)
    delivered = receiver.entries()
    positions = [e["position"] for e in delivered]
    # At least once: a batch may come twice, but never out of order and nothing missing.
    unique = list(dict.fromkeys(positions))
    assert unique == [e["position"] for e in lead_entries(await feed_of(pool))]
    assert created > 0


async def test_more_due_subscriptions_than_a_claim_takes_are_all_served(
    pool: asyncpg.Pool, clock: Clock
) -> None:
    """A process that claims one subscription a pass still serves two: the claim takes the one
    the last pass did not, though the other stays due with nothing new."""
    from lead_ledger.service.subscriptions import manage  # noqa: PLC0415

    await make_account(pool, A, KEY_A, {CAMPAIGN_A: "north"}, "IN")
    posted: list[str] = []

    async def post(url: str, _body: bytes, _headers: object) -> int:
        posted.append(url)
        return 200

    for url in ("http://10.1.1.1/one", "http://10.1.1.2/two"):
        async with pool.acquire() as conn:
            await manage.create(
                conn, ctx(A), A, url=url, event_types=None, campaign_id=None, secret=SECRET
            )
    await insert_many(pool, 1, 1)
    policy = Policy(allow_private=True, claim_limit=1, lease_seconds=60)
    deliverer = Deliverer(pool, post, owner="one-at-a-time", clock=clock, policy=policy)
    for _ in range(4):
        await deliverer.pass_once()
    assert sorted(set(posted)) == ["http://10.1.1.1/one", "http://10.1.1.2/two"]


async def test_a_rebuild_sends_nothing_again(
    api: Client, pool: asyncpg.Pool, owner_pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """Rebuilding every projection (subscriptions too) leaves the checkpoint where it was and
    makes no POST: delivery state is not a projection."""
    sid = (await subscribe(api, receiver.url))["subscription_id"]
    await insert_many(pool, 1, 10)
    await until(lambda: len(receiver.entries()) >= 10)
    before = await (await api.get(f"{SUBSCRIPTIONS}/{sid}", headers=auth())).json()
    posts = len(receiver.posts)
    await rebuild(owner_pool)
    await asyncio.sleep(1)
    after = await (await api.get(f"{SUBSCRIPTIONS}/{sid}", headers=auth())).json()
    assert len(receiver.posts) == posts
    assert after == before


async def test_the_documented_receiver_verifies_real_deliveries(
    api: Client, pool: asyncpg.Pool
) -> None:
    """The Python receiver in docs/subscriptions.md, run as written, takes real deliveries and
    refuses a body whose signature does not match."""
    code = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert code is not None
    namespace: dict[str, Any] = {"__name__": "receiver_example"}
    exec(compile(code.group(1), str(DOCS), "exec"), namespace)  # noqa: S102 - our own document
    secret = "documented-receiver-secret"
    app = namespace["make_app"](secret)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        await subscribe(api, str(server.make_url("/hook")), secret=secret)
        await insert_many(pool, 1, 3)
        await until(lambda: len(namespace["RECEIVED"]) >= 3)
        assert [e["type"] for e in namespace["RECEIVED"]] == ["LeadInserted"] * 3
        import aiohttp  # noqa: PLC0415

        async with aiohttp.ClientSession() as session:
            forged = await session.post(
                server.make_url("/hook"),
                data=b'{"events": []}',
                headers={"X-Ledger-Signature": "sha256=00", "X-Ledger-Delivery": "x"},
            )
            assert forged.status == 401
    finally:
        await server.close()


# --- helpers for the deliverers run by hand -------------------------------------------------------


async def subscribe_via(pool: asyncpg.Pool, receiver: Receiver) -> int:
    """A subscription made through the service (the app's own deliverer is not needed)."""
    from lead_ledger.service.subscriptions import manage  # noqa: PLC0415

    async with pool.acquire() as conn:
        created = await manage.create(
            conn, ctx(A), A, url=receiver.url, event_types=None, campaign_id=None, secret=SECRET
        )
    return created.subscription_id


def poster_of(receiver: Receiver) -> Callable[[str, bytes, object], Awaitable[int]]:
    async def post(_url: str, body: bytes, headers: object) -> int:
        assert isinstance(headers, dict)
        receiver.posts.append((headers | {"ok": "1" if receiver.status < 300 else "0"}, body))
        return receiver.status

    return post


def delivered_positions(receiver: Receiver) -> set[int]:
    return {e["position"] for e in receiver.entries()}


async def feed_of(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    from lead_ledger.service.reads import feed_page  # noqa: PLC0415

    async with pool.acquire() as conn:
        page = await feed_page(conn, A, after=0, limit=1000)
    decoded: list[dict[str, Any]] = msgspec.json.decode(msgspec.json.encode(page.events))
    return decoded


async def test_schemathesis_finds_no_undocumented_answer_in_subscription_routes(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    """The project's schemathesis run (test_schemathesis.py), on the subscription routes: no
    5xx, no answer the document does not describe."""
    app = create_app(settings, database_url)
    server = TestServer(app)
    api = await aiohttp_client(server)
    world = await account_with_every_key(api)
    document = await (await api.get("/openapi.json", headers=ADMIN)).json()
    document["paths"] = {
        path: item for path, item in document["paths"].items() if path.startswith(SUBSCRIPTIONS)
    }
    assert len(document["paths"]) == 3
    base_url = str(server.make_url("")).rstrip("/")
    failures = await asyncio.to_thread(fuzz, base_url, document, world.keys, world.account_id)
    assert failures == [], "\n\n".join(failures)


async def test_old_attempts_are_pruned_per_subscription(api: Client, pool: asyncpg.Pool) -> None:
    """Pruning keeps a subscription's newest KEEP_ATTEMPTS attempts and no other's are touched;
    the deliveries route lists the newest first."""
    first = (await subscribe(api, "https://example.com/a"))["subscription_id"]
    second = (await subscribe(api, "https://example.com/b"))["subscription_id"]
    rows = [
        (sid, uuid.uuid4(), 1, n, n, 500, "answered 500", 1.0, False)
        for n in range(1, 301)
        for sid in (first, second)
    ]
    async with pool.acquire() as conn:
        await conn.executemany(delivery.INSERT_ATTEMPT, rows)
        await conn.execute(delivery.PRUNE_ATTEMPTS, first, delivery.KEEP_ATTEMPTS)
        grouped = await conn.fetch(
            "SELECT subscription_id, count(*) AS n FROM subscription_attempts GROUP BY 1"
        )
    counts = {row["subscription_id"]: row["n"] for row in grouped}
    assert counts == {first: delivery.KEEP_ATTEMPTS, second: 300}
    listed = await api.get(f"{SUBSCRIPTIONS}/{first}/deliveries?limit=3", headers=auth())
    assert [a["last_position"] for a in (await listed.json())["attempts"]] == [300, 299, 298]


async def test_new_types_make_a_new_batch_under_a_new_delivery_id(
    api: Client, pool: asyncpg.Pool, receiver: Receiver
) -> None:
    """A batch failing under the old types is not sent again under its id once the types
    change: a delivery id always names the same events."""
    sid = (await subscribe(api, receiver.url))["subscription_id"]
    receiver.status = 500
    await insert_many(pool, 1, 3)
    await update_lead(pool, A, 2, ctx(A), first_name="Ravi")
    await until(lambda: len(receiver.posts) >= 2)
    old_id = receiver.posts[0][0]["X-Ledger-Delivery"]
    await patch(api, sid, event_types=["LeadUpdated"])
    await until(lambda: receiver.posts[-1][0]["X-Ledger-Delivery"] != old_id)
    receiver.status = 200
    await until(lambda: len(receiver.entries()) >= 1)
    ok = [(h, b) for h, b in receiver.posts if h["ok"] == "1"]
    assert ok[0][0]["X-Ledger-Delivery"] != old_id
    assert [(e["type"], e["stream_id"]) for e in receiver.entries()] == [("LeadUpdated", "lead-2")]


async def test_new_types_while_a_batch_is_sent_skip_nothing_they_match(
    pool: asyncpg.Pool, clock: Clock
) -> None:
    """Types changed while a batch chosen by the old ones is being sent: its 2xx does not move
    the checkpoint past the events only the new types match; they are sent next."""
    from lead_ledger.service.subscriptions import manage  # noqa: PLC0415

    await make_account(pool, A, KEY_A, {CAMPAIGN_A: "north"}, "IN")
    async with pool.acquire() as conn:
        created = await manage.create(
            conn,
            ctx(A),
            A,
            url="http://10.1.1.1/hook",
            event_types=["LeadInserted"],
            campaign_id=None,
            secret=SECRET,
        )
    sid = created.subscription_id
    await insert_many(pool, 1, 1)
    await update_lead(pool, A, 1, ctx(A), first_name="Ravi")
    sent: list[list[str]] = []

    async def post(_url: str, body: bytes, _headers: object) -> int:
        sent.append([e["type"] for e in msgspec.json.decode(body)["events"]])
        if len(sent) == 1:  # the types change while the first batch is on its way
            async with pool.acquire() as conn:
                await manage.change(conn, ctx(A), A, sid, event_types=["LeadUpdated"])
        return 200

    policy = Policy(allow_private=True, lease_seconds=60)
    deliverer = Deliverer(pool, post, owner="sender", clock=clock, policy=policy)
    for _ in range(3):
        await deliverer.pass_once()
    assert sent == [["LeadInserted"], ["LeadUpdated"]]


async def test_a_step_claimed_before_a_pause_sends_nothing_written_after_it(
    pool: asyncpg.Pool, clock: Clock
) -> None:
    """A process that leased the subscription just before it was paused finds it paused when it
    has read the feed, and sends nothing; resumed, the events go out."""
    from lead_ledger.service.subscriptions import manage  # noqa: PLC0415

    await make_account(pool, A, KEY_A, {CAMPAIGN_A: "north"}, "IN")
    async with pool.acquire() as conn:
        created = await manage.create(
            conn, ctx(A), A, url="http://10.1.1.1/hook", event_types=None, campaign_id=None,
            secret=SECRET,
        )  # fmt: skip
    sid = created.subscription_id
    sent: list[list[str]] = []

    async def post(_url: str, body: bytes, _headers: object) -> int:
        sent.append([e["stream_id"] for e in msgspec.json.decode(body)["events"]])
        return 200

    policy = Policy(allow_private=True, lease_seconds=60)
    deliverer = Deliverer(pool, post, owner="early", clock=clock, policy=policy)
    (claimed,) = await deliverer.claim()
    async with pool.acquire() as conn:
        await manage.change(conn, ctx(A), A, sid, state="paused")
    await insert_many(pool, 1, 2)
    assert await deliverer.step(claimed) is False
    assert sent == []
    async with pool.acquire() as conn:
        await manage.change(conn, ctx(A), A, sid, state="active")
    await deliverer.pass_once()
    assert sent == [["lead-1", "lead-2"]]
