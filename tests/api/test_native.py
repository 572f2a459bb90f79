"""The native API through the real app: leads, their past and history, audit, feed and SSE."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest

from lead_ledger.api import native
from lead_ledger.api.app import create_app
from lead_ledger.api.auth import key_digest
from lead_ledger.api.keys import POOL, SETTINGS
from lead_ledger.ledger.envelope import NO_STREAM, Actor
from lead_ledger.ledger.events import (
    AccountCreated,
    AccountSettings,
    CampaignConfig,
    CampaignCreated,
    CredentialIssued,
    Dialect,
    DomainEvent,
    LeadDeleted,
    LeadEvent,
    LeadFields,
    stream_of_account,
    stream_of_lead,
)
from lead_ledger.ledger.lead import decide_insert, decide_update, fold
from lead_ledger.ledger.opening import open_pairs
from lead_ledger.ledger.store import read_stream
from lead_ledger.service import reads
from lead_ledger.service.writer import Context, record, stream_append
from lead_ledger.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.support import Client

KEY_A, KEY_B, JTEL_KEY_A = "native-key-a", "native-key-b", "jtel-key-a"
A, B = 1, 2
CAMPAIGN_A, OTHER_CAMPAIGN_A, CAMPAIGN_B = 11, 12, 21


@pytest.fixture
async def api(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    """The real app with the native routes, on its own fresh database."""
    return await aiohttp_client(create_app(settings, database_url))


def ctx(account_id: int, dialect: str = "native", **actor: str) -> Context:
    return Context(
        actor=Actor(
            dialect=dialect,
            account_id=account_id,
            credential_id=f"cred-{dialect}-{account_id}",
            **actor,
        ),
        request_id=f"req-{dialect}",
    )


async def write(
    pool: asyncpg.Pool,
    context: Context,
    stream: str,
    expected: int,
    events: Sequence[DomainEvent],
    account_id: int,
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await record(
            conn, [stream_append(context, stream, expected, events, account_id=account_id)]
        )


async def make_account(
    pool: asyncpg.Pool, account_id: int, key: str, campaigns: dict[int, str], region: str | None
) -> None:
    """An account with a native credential (and campaigns), written as the admin API would."""
    keys: tuple[tuple[Dialect, str], ...] = (("native", key), ("jtel", f"jtel-{key}"))
    issued = [
        CredentialIssued(
            account_id=account_id,
            credential_id=f"cred-{dialect}-{account_id}",
            dialect=dialect,
            key_sha256=key_digest(k),
        )
        for dialect, k in keys
    ]
    events: list[DomainEvent] = [
        AccountCreated(
            account_id=account_id,
            name=f"acct{account_id}",
            settings=AccountSettings(default_region=region),
        ),
        *issued,
        *(
            CampaignCreated(
                account_id=account_id, campaign_id=cid, config=CampaignConfig(name=name)
            )
            for cid, name in campaigns.items()
        ),
    ]
    await write(
        pool, ctx(account_id, "admin"), stream_of_account(account_id), NO_STREAM, events, account_id
    )


async def insert_lead(
    pool: asyncpg.Pool, account_id: int, campaign_id: int, lead_id: int, **fields: Any
) -> None:
    inserted = decide_insert(
        lead_id=lead_id,
        account_id=account_id,
        campaign_id=campaign_id,
        fields=LeadFields(**fields),
        default_region="IN",
    )
    await write(pool, ctx(account_id), stream_of_lead(lead_id), NO_STREAM, [inserted], account_id)


async def update_lead(
    pool: asyncpg.Pool, account_id: int, lead_id: int, context: Context, **patch: object
) -> None:
    """Apply a field patch the way a dialect would: decide on the folded state, then record."""
    async with pool.acquire() as conn:
        stored = await open_pairs(conn, await read_stream(conn, stream_of_lead(lead_id)))
    state = fold(e for _, e in stored if isinstance(e, LeadEvent))
    assert state is not None
    events = list(decide_update(state, patch, "IN"))
    await write(pool, context, stream_of_lead(lead_id), state.version, events, account_id)


@pytest.fixture
async def seeded(pool: asyncpg.Pool) -> asyncpg.Pool:
    """Accounts A (region IN) and B; five leads in A over two campaigns, one in B."""
    await make_account(pool, A, KEY_A, {CAMPAIGN_A: "north", OTHER_CAMPAIGN_A: "south"}, "IN")
    await make_account(pool, B, KEY_B, {CAMPAIGN_B: "north"}, None)
    for lead_id in range(1, 6):
        campaign = CAMPAIGN_A if lead_id <= 3 else OTHER_CAMPAIGN_A
        await insert_lead(
            pool,
            A,
            campaign,
            lead_id,
            phone_numbers=[f"+91987654321{lead_id}"],
            user_data=f"ext-{lead_id}",
            name=f"Lead {lead_id}",
        )
    await insert_lead(pool, B, CAMPAIGN_B, 100, phone_numbers=["+919876543211"], user_data="ext-1")
    return pool


def auth(key: str = KEY_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def get_json(api: Client, url: str, status: int = 200, key: str = KEY_A, **kw: Any) -> Any:
    response = await api.get(url, headers=auth(key), **kw)
    assert response.status == status, await response.text()
    return await response.json(content_type=None)


# --- auth -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, auth("wrong"), auth(f"jtel-{KEY_A}"), {"Authorization": KEY_A}]
)
async def test_every_route_refuses_a_missing_or_foreign_key(
    api: Client, seeded: asyncpg.Pool, headers: dict[str, str]
) -> None:
    """No key, an unknown key, another dialect's key or no Bearer scheme is a 401 problem."""
    for url in (
        "/v1/leads",
        "/v1/leads/1",
        "/v1/leads/1/history",
        "/v1/audit",
        "/v1/events",
        "/v1/events/stream",
        "/v1/jobs",
        "/v1/jobs/1",
    ):
        response = await api.get(url, headers=headers)
        assert response.status == 401, url
        assert response.content_type == "application/problem+json"
        assert (await response.json(content_type=None))["status"] == 401


# --- leads ----------------------------------------------------------------------------------------


async def test_leads_page_by_lead_id_until_next_after_is_null(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """limit=2 over five leads gives 2, 2, 1 with next_after chaining and never B's lead."""
    seen: list[int] = []
    after: int | None = 0
    pages = 0
    while after is not None:
        page = await get_json(api, f"/v1/leads?limit=2&after={after}")
        seen += [lead["lead_id"] for lead in page["leads"]]
        after, pages = page["next_after"], pages + 1
    assert seen == [1, 2, 3, 4, 5]
    assert pages == 3


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("campaign=north", [1, 2, 3]),
        (f"campaign={OTHER_CAMPAIGN_A}", [4, 5]),
        ("phone=098765 43213", [3]),  # the account's region places the national format
        ("phone=919876543214", [4]),
        ("user_data=ext-2", [2]),
        ("campaign=south&user_data=ext-2", []),
        ("phone=%2B919876543211&campaign=north", [1]),
    ],
)
async def test_leads_filter_by_campaign_phone_and_user_data(
    api: Client, seeded: asyncpg.Pool, query: str, expected: list[int]
) -> None:
    """Campaign by name or id, phone by dedupe key, user_data exactly; only A's leads."""
    page = await get_json(api, f"/v1/leads?{query}")
    assert [lead["lead_id"] for lead in page["leads"]] == expected


async def test_another_accounts_campaign_is_unknown(api: Client, seeded: asyncpg.Pool) -> None:
    """B's campaign id is 404 for A, like a campaign that does not exist."""
    body = await get_json(api, f"/v1/leads?campaign={CAMPAIGN_B}", 404)
    assert body["parameter"] == "campaign"
    await get_json(api, "/v1/leads?campaign=nowhere", 404)


async def test_as_of_is_a_prefix_of_the_stream_not_every_event_recorded_by_then(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """A transaction that began first but wrote a later version (it waited for the stream)
    records v3 before v2: as of a time between their starts, the lead is v1, not v1 + v3."""
    async with seeded.acquire() as first, first.transaction():
        await first.fetchval("SELECT now()")  # this transaction's recorded_at is taken
        await asyncio.sleep(0.02)
        between = datetime.now(UTC)
        await asyncio.sleep(0.02)
        await update_lead(seeded, A, 1, ctx(A), name="Second")  # v2, recorded after `between`
        stored = await open_pairs(first, await read_stream(first, stream_of_lead(1)))
        state = fold(e for _, e in stored if isinstance(e, LeadEvent))
        assert state is not None
        events = list(decide_update(state, {"name": "Third"}, "IN"))
        await record(first, [stream_append(ctx(A), stream_of_lead(1), 2, events, account_id=A)])
    versions = await seeded.fetch(
        "SELECT stream_version, recorded_at FROM events WHERE stream_id = 'lead-1' ORDER BY 1"
    )
    assert versions[2]["recorded_at"] < between < versions[1]["recorded_at"]
    then = await get_json(api, "/v1/leads/1", params={"as_of": between.isoformat()})
    assert (then["name"], then["version"]) == ("Lead 1", 1)
    assert (await get_json(api, "/v1/leads/1"))["name"] == "Third"


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("after=-1", "after"),
        ("campagin=north", "campagin"),
    ],
)
async def test_bad_paging_parameters_are_named(
    api: Client, seeded: asyncpg.Pool, query: str, parameter: str
) -> None:
    """A bad or unknown parameter is a 400 problem naming it."""
    body = await get_json(api, f"/v1/leads?{query}", 400)
    assert body["parameter"] == parameter


@pytest.mark.parametrize(
    ("path", "parameter", "detail"),
    [
        ("/v1/audit?type=LeadInserted&type=Bogus", "type", "type is given more than once"),
        ("/v1/leads?limit=1&limit=2", "limit", "limit is given more than once"),
        ("/v1/audit?type=", "type", "type must not be empty"),
        ("/v1/leads?campaign=", "campaign", "campaign must not be empty"),
        ("/v1/dnc?phone=", "phone", "phone must not be empty"),
        ("/v1/audit?type=,%20", "type", "type names no event type"),
    ],
)
async def test_a_filter_given_twice_or_empty_is_refused(
    api: Client, seeded: asyncpg.Pool, path: str, parameter: str, detail: str
) -> None:
    """A second value would be dropped unread and an empty filter would read as none: both
    are a 400 naming the parameter, never a page that looks filtered and is not."""
    body = await get_json(api, path, 400)
    assert (body["parameter"], body["detail"], body["title"]) == (
        parameter,
        detail,
        "Invalid query parameter",
    )


@pytest.mark.parametrize(
    "query",
    [
        "/v1/leads/1?as_of=0001-01-01T00:00:00%2B05:00",
        "/v1/leads/1?as_of=9999-12-31T23:59:59-05:00",
        "/v1/audit?from=0001-01-01T00:00:00%2B05:00",
        "/v1/jobs?to=9999-12-31T23:59:59-05:00",
    ],
)
async def test_a_time_that_utc_cannot_hold_is_refused(
    api: Client, seeded: asyncpg.Pool, query: str
) -> None:
    """An offset that moves a time past the years 1-9999 in UTC: a 400 naming the parameter,
    never a 500 from converting it."""
    body = await get_json(api, query, 400)
    name = query.split("?", 1)[1].split("=", 1)[0]
    assert body["parameter"] == name
    assert body["detail"] == f"{name} is out of range: in UTC it must fall in the years 1 to 9999"


async def test_a_lead_shows_every_field_and_its_meta(api: Client, seeded: asyncpg.Pool) -> None:
    """GET /v1/leads/{id} has the canonical fields, ids, version, times and dedupe keys."""
    lead = await get_json(api, "/v1/leads/3")
    assert lead["lead_id"] == 3
    assert lead["campaign_id"] == CAMPAIGN_A
    assert lead["account_id"] == A
    assert lead["version"] == 1
    assert lead["dedupe_keys"] == ["+919876543213"]
    assert lead["name"] == "Lead 3"
    assert lead["priority"] == 1
    assert lead["email"] is None
    assert lead["entry_at"] == lead["modified_at"]


async def test_a_foreign_lead_is_exactly_a_missing_one(api: Client, seeded: asyncpg.Pool) -> None:
    """B's lead 100 answers A like lead 999 that never existed, on every lead route."""
    for suffix in ("", "/history", "?as_of_version=1"):
        foreign = await api.get(f"/v1/leads/100{suffix}", headers=auth())
        missing = await api.get(f"/v1/leads/999{suffix}", headers=auth())
        assert foreign.status == missing.status == 404
        body, other = await foreign.json(content_type=None), await missing.json(content_type=None)
        assert body["detail"].replace("100", "N") == other["detail"].replace("999", "N")
    await get_json(api, "/v1/leads/abc", 404)
    await get_json(api, f"/v1/leads/{2**64}", 404)
    assert (await get_json(api, "/v1/leads/100", key=KEY_B))["lead_id"] == 100


async def test_as_of_folds_the_past_from_the_stream(api: Client, seeded: asyncpg.Pool) -> None:
    """as_of and as_of_version show the lead before an update; before it existed is 404."""
    await update_lead(seeded, A, 1, ctx(A), name="Renamed", agent="ag-7")
    assert (await get_json(api, "/v1/leads/1"))["name"] == "Renamed"
    first = await seeded.fetchval(
        "SELECT recorded_at FROM events WHERE stream_id = 'lead-1' AND stream_version = 1"
    )
    then = await get_json(api, "/v1/leads/1", params={"as_of": first.isoformat()})
    assert (then["name"], then["agent"], then["version"]) == ("Lead 1", None, 1)
    assert (await get_json(api, "/v1/leads/1?as_of_version=1"))["name"] == "Lead 1"
    latest = await get_json(api, "/v1/leads/1?as_of_version=3")
    assert (latest["name"], latest["agent"]) == ("Renamed", "ag-7")
    assert latest == await get_json(api, "/v1/leads/1")  # a fold equals the projection
    await get_json(api, "/v1/leads/1?as_of_version=4", 404)
    before = (first - timedelta(seconds=1)).isoformat()
    await get_json(api, "/v1/leads/1", 404, params={"as_of": before})


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("as_of=yesterday", "as_of"),
        ("as_of_version=0", "as_of_version"),
        ("as_of=2026-01-01T00:00:00Z&as_of_version=1", "as_of_version"),
    ],
)
async def test_a_bad_as_of_is_a_400_naming_it(
    api: Client, seeded: asyncpg.Pool, query: str, parameter: str
) -> None:
    """An unreadable time or version, or both at once, names the parameter."""
    assert (await get_json(api, f"/v1/leads/1?{query}", 400))["parameter"] == parameter


async def test_a_deleted_lead_is_gone_now_but_readable_then(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """After LeadDeleted: 404 now, the live state as_of_version=1, and its full history."""
    await write(seeded, ctx(A), stream_of_lead(2), 1, [LeadDeleted(lead_id=2, reason="api")], A)
    await get_json(api, "/v1/leads/2", 404)
    await get_json(api, "/v1/leads/2?as_of_version=2", 404)
    assert (await get_json(api, "/v1/leads/2?as_of_version=1"))["name"] == "Lead 2"
    history = await get_json(api, "/v1/leads/2/history")
    assert [e["type"] for e in history["events"]] == ["LeadInserted", "LeadDeleted"]


async def test_history_shows_actor_and_field_level_diffs(api: Client, seeded: asyncpg.Pool) -> None:
    """Each event with version, actor, request id, body, and old/new per changed field."""
    await update_lead(seeded, A, 1, ctx(A, "jtel"), name="Renamed", priority=5, agent="ag-7")
    history = await get_json(api, "/v1/leads/1/history")
    inserted, updated, reassigned = history["events"]
    assert [e["version"] for e in history["events"]] == [1, 2, 3]
    assert inserted["changes"] is None
    assert inserted["data"]["fields"]["name"] == "Lead 1"
    assert updated["type"] == "LeadUpdated"
    assert updated["changes"] == {
        "name": {"old": "Lead 1", "new": "Renamed"},
        "priority": {"old": 1, "new": 5},
    }
    assert updated["actor"] == {"dialect": "jtel", "account_id": A, "credential_id": "cred-jtel-1"}
    assert updated["request_id"] == "req-jtel"
    assert reassigned["changes"] == {"agent": {"old": None, "new": "ag-7"}}
    assert updated["position"] < reassigned["position"]


# --- audit ----------------------------------------------------------------------------------------


async def test_audit_filters_by_actor_dialect_type_and_time(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """Each filter narrows the account's events; B's events never appear."""
    await update_lead(seeded, A, 3, ctx(A, "ozonetel", username="bob"), comments="called")
    everything = (await get_json(api, "/v1/audit?limit=1000"))["events"]
    assert {e["stream_id"] for e in everything} >= {"account-1", "lead-1", "lead-5"}
    assert all(e["stream_id"] not in {"account-2", "lead-100"} for e in everything)

    by_dialect = (await get_json(api, "/v1/audit?dialect=ozonetel"))["events"]
    assert [(e["type"], e["stream_id"]) for e in by_dialect] == [("LeadUpdated", "lead-3")]
    assert (await get_json(api, "/v1/audit?actor=bob"))["events"] == by_dialect
    by_credential = (await get_json(api, "/v1/audit?actor=cred-native-1"))["events"]
    assert [e["stream_id"] for e in by_credential] == [f"lead-{i}" for i in range(1, 6)]
    types = (await get_json(api, "/v1/audit?type=CampaignCreated,AccountCreated"))["events"]
    bogus = await get_json(api, "/v1/audit?type=AccountCreated,Bogus", status=400)
    assert (bogus["parameter"], bogus["status"]) == ("type", 400)
    assert bogus["detail"].startswith("no event type Bogus; the types are AccountCreated, ")
    assert sorted(e["type"] for e in types) == [
        "AccountCreated",
        "CampaignCreated",
        "CampaignCreated",
    ]

    cut = datetime.fromisoformat(by_dialect[0]["recorded_at"])
    since = (await get_json(api, "/v1/audit", params={"from": cut.isoformat()}))["events"]
    before = (await get_json(api, "/v1/audit?limit=1000", params={"to": cut.isoformat()}))["events"]
    assert since == by_dialect
    assert len(before) == len(everything) - 1


async def test_audit_pages_by_position(api: Client, seeded: asyncpg.Pool) -> None:
    """limit=3 pages chain through next_after and together equal one big page."""
    everything = (await get_json(api, "/v1/audit?limit=1000"))["events"]
    paged: list[int] = []
    after: int | None = 0
    while after is not None:
        page = await get_json(api, f"/v1/audit?limit=3&after={after}")
        paged += [e["position"] for e in page["events"]]
        after = page["next_after"]
    assert paged == [e["position"] for e in everything]
    assert (await get_json(api, "/v1/audit?from=soon", 400))["parameter"] == "from"


# --- feed and stream ------------------------------------------------------------------------------


async def whole_feed(api: Client, count: int, key: str = KEY_A) -> list[dict[str, Any]]:
    """The account's first `count` feed events, paging by next_after two at a time.

    The feed fence is cluster-wide: another database's open transaction can hold events back
    for a moment, so an empty page means "not yet", not "done".
    """
    events: list[dict[str, Any]] = []
    after = 0
    async with asyncio.timeout(30):
        while len(events) < count:
            page = await get_json(api, f"/v1/events?after={after}&limit=2", key=key)
            assert len(page["events"]) <= 2
            events += page["events"]
            after = page["next_after"]
            if not page["events"]:
                await asyncio.sleep(0.05)
    return events


async def test_events_feed_pages_only_the_accounts_events(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """/v1/events returns A's ten events as feed entries, resuming from next_after."""
    events = await whole_feed(api, 10)
    streams = {e["stream_id"] for e in events}
    assert streams == {"account-1"} | {f"lead-{i}" for i in range(1, 6)}
    assert all(e["data"]["type"] == e["type"] for e in events)
    assert len({e["position"] for e in events}) == 10
    last = events[-1]["position"]
    assert await get_json(api, f"/v1/events?after={last}") == {"events": [], "next_after": last}


async def read_sse(response: Any, count: int) -> list[dict[str, Any]]:
    """The first `count` events of an SSE response as dicts of their fields."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with asyncio.timeout(30):
        while len(events) < count:
            raw = await response.content.readline()
            assert raw, f"the stream ended after {len(events)} events"
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                current.setdefault("comments", []).append(line)
            elif line:
                name, _, value = line.partition(": ")
                current[name] = value
            elif "id" in current:
                events.append(current)
                current = {}
    return events


async def test_the_stream_sends_events_and_resumes_from_last_event_id(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """SSE gives id/event/data per event; Last-Event-ID resumes right after that event."""
    response = await api.get("/v1/events/stream", headers=auth())
    assert response.status == 200
    assert response.content_type == "text/event-stream"
    first = await read_sse(response, 3)
    response.close()
    assert [e["event"] for e in first] == ["AccountCreated", "CredentialIssued", "CredentialIssued"]
    assert all(msgspec.json.decode(e["data"])["position"] == int(e["id"]) for e in first)

    resumed = await api.get(
        "/v1/events/stream", headers={**auth(), "Last-Event-ID": first[1]["id"]}
    )
    again = await read_sse(resumed, 2)
    resumed.close()
    assert [e["id"] for e in again] == [first[2]["id"], str(int(first[2]["id"]) + 1)]

    # Events written while a client listens arrive too.
    head = (await whole_feed(api, 5, key=KEY_B))[-1]["position"]
    live = await api.get(f"/v1/events/stream?after={head}", headers=auth(KEY_B))
    await insert_lead(seeded, B, CAMPAIGN_B, 101, phone_numbers=["+15551234567"])
    (event,) = await read_sse(live, 1)
    live.close()
    assert msgspec.json.decode(event["data"])["stream_id"] == "lead-101"


async def test_the_stream_sends_heartbeats_and_frees_its_connection(
    api: Client, seeded: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle stream sends comment heartbeats, and holds no connection of the pool while it
    waits for events."""
    monkeypatch.setattr(native, "HEARTBEAT_SECONDS", 0.1)
    assert api.app is not None
    app_pool = api.app[POOL]
    head = (await whole_feed(api, 10))[-1]["position"]
    response = await api.get(f"/v1/events/stream?after={head}", headers=auth())
    line = await asyncio.wait_for(response.content.readline(), 10)
    assert line == b": heartbeat\n"
    async with asyncio.timeout(10):  # the app's own loops borrow connections for a moment
        while app_pool.get_idle_size() < app_pool.get_size():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    response.close()


async def test_a_bad_last_event_id_is_a_400(api: Client, seeded: asyncpg.Pool) -> None:
    """Last-Event-ID must be a position."""
    response = await api.get("/v1/events/stream", headers={**auth(), "Last-Event-ID": "x"})
    assert response.status == 400
    assert (await response.json(content_type=None))["parameter"] == "Last-Event-ID"


async def test_secret_verifiers_are_never_shown(api: Client, seeded: asyncpg.Pool) -> None:
    """Credential key hashes leave audit, the feed and the stream; the rest of the body stays."""
    audit = (await get_json(api, "/v1/audit?type=CredentialIssued"))["events"]
    feed = [e for e in await whole_feed(api, 10) if e["type"] == "CredentialIssued"]
    response = await api.get("/v1/events/stream", headers=auth())
    streamed = [msgspec.json.decode(e["data"]) for e in await read_sse(response, 3)][1:]
    response.close()
    for events in (audit, feed, streamed):
        assert [e["data"]["dialect"] for e in events] == ["native", "jtel"]
        assert all("key_sha256" not in e["data"] for e in events)
    stored = await seeded.fetchval(
        "SELECT data FROM events WHERE type = 'CredentialIssued' LIMIT 1"
    )
    assert b"key_sha256" in stored  # kept in the log, where the credentials view is rebuilt from


async def test_the_stream_outlives_its_database_connection(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """The database drops the stream's connection: the stream goes on, on a new one, from the
    event after the last it sent: the next events arrive, none twice, none missed."""
    head = (await whole_feed(api, 5, key=KEY_B))[-1]["position"]
    live = await api.get(f"/v1/events/stream?after={head}", headers=auth(KEY_B))
    await insert_lead(seeded, B, CAMPAIGN_B, 101, phone_numbers=["+15551234567"])
    (first,) = await read_sse(live, 1)
    async with seeded.acquire() as killer:  # every other session of the database
        await killer.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    await asyncio.sleep(0.5)  # the pools see their connections closed
    await insert_lead(seeded, B, CAMPAIGN_B, 102, phone_numbers=["+15551234568"])
    await insert_lead(seeded, B, CAMPAIGN_B, 103, phone_numbers=["+15551234569"])
    later = await read_sse(live, 2)
    live.close()
    streams = [msgspec.json.decode(e["data"])["stream_id"] for e in [first, *later]]
    assert streams == ["lead-101", "lead-102", "lead-103"]


async def test_streams_hold_no_database_connection_while_they_wait(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """More open streams than the pool has connections: every other request is still answered
    at once, and an event written then reaches every stream."""
    assert api.app is not None
    size = api.app[SETTINGS].db_pool_max
    head = (await whole_feed(api, 5, key=KEY_B))[-1]["position"]
    streams = [
        await api.get(f"/v1/events/stream?after={head}", headers=auth(KEY_B))
        for _ in range(size + 2)
    ]
    async with asyncio.timeout(5):
        listed = await api.get("/v1/leads", headers=auth(KEY_B))
    assert listed.status == 200
    await insert_lead(seeded, B, CAMPAIGN_B, 101, phone_numbers=["+15551234567"])
    for stream in streams:
        (event,) = await read_sse(stream, 1)
        stream.close()
        assert msgspec.json.decode(event["data"])["stream_id"] == "lead-101"


async def sse_until_end(response: Any) -> list[dict[str, Any]]:
    """Every event of an SSE response until the server ends it (within 15 s)."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with asyncio.timeout(15):
        while raw := await response.content.readline():
            line = raw.decode().rstrip("\n")
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                current[name] = value
            elif not line and "id" in current:
                events.append(current)
                current = {}
    return events


async def revoke_and_insert(api: Client, seeded: asyncpg.Pool) -> list[dict[str, Any]]:
    """Open B's stream at its head, revoke its key, insert a lead: the events until it ends."""
    head = (await whole_feed(api, 5, key=KEY_B))[-1]["position"]
    live = await api.get(f"/v1/events/stream?after={head}", headers=auth(KEY_B))
    assert live.status == 200
    revoked = await api.delete(
        f"/v1/admin/accounts/acct{B}/credentials/cred-native-{B}", headers=auth(ADMIN_TOKEN)
    )
    assert revoked.status == 204, await revoked.text()
    await insert_lead(seeded, B, CAMPAIGN_B, 101, phone_numbers=["+15551234567"])
    try:
        return await sse_until_end(live)
    finally:
        live.close()


async def test_a_stream_ends_when_its_key_is_revoked(api: Client, seeded: asyncpg.Pool) -> None:
    """Revoking the stream's own key ends the stream, and a lead inserted after never arrives."""
    events = await revoke_and_insert(api, seeded)
    assert [e["event"] for e in events] in ([], ["CredentialRevoked"])


async def test_a_stream_ends_at_its_own_keys_revocation_event(
    api: Client, seeded: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even were the key not checked again, the stream ends with the key's CredentialRevoked
    event it carries, before the lead inserted after it."""

    async def always(*_: object) -> bool:
        return True

    monkeypatch.setattr(native, "still_valid", always, raising=False)
    events = await revoke_and_insert(api, seeded)
    assert [e["event"] for e in events] == ["CredentialRevoked"]
    assert msgspec.json.decode(events[0]["data"])["data"]["credential_id"] == f"cred-native-{B}"


async def test_a_stream_ends_when_its_key_is_found_revoked(
    api: Client, seeded: asyncpg.Pool, owner_pool: asyncpg.Pool
) -> None:
    """A key revoked by a path that records no event the stream carries is found on the
    stream's next read: the stream ends and the lead inserted after never arrives."""
    head = (await whole_feed(api, 5, key=KEY_B))[-1]["position"]
    live = await api.get(f"/v1/events/stream?after={head}", headers=auth(KEY_B))
    assert live.status == 200
    flip = "UPDATE credentials SET revoked = NOT revoked WHERE credential_id = $1"
    await owner_pool.execute(flip, f"cred-native-{B}")  # revoked, with no event recorded
    try:
        await insert_lead(seeded, B, CAMPAIGN_B, 101, phone_numbers=["+15551234567"])
        assert await sse_until_end(live) == []
    finally:
        live.close()
        # Back as the log has it, for the harness's check of the projections against a rebuild.
        await owner_pool.execute(flip, f"cred-native-{B}")


@pytest.mark.parametrize("value", ["9" * 5000, "²", "0", "-1"])
async def test_a_min_position_that_is_no_position_is_a_400(
    api: Client, seeded: asyncpg.Pool, value: str
) -> None:
    """X-Ledger-Min-Position of 5,000 digits (past int()'s limit) or not digits is a 400."""
    response = await api.get("/v1/leads/1", headers=auth() | {"X-Ledger-Min-Position": value})
    assert response.status == 400, await response.text()
    assert response.content_type == "application/problem+json"
    assert (await response.json())["header"] == "X-Ledger-Min-Position"


async def test_an_as_of_read_of_a_foreign_lead_opens_nothing(
    api: Client, seeded: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As-of and history reads of B's lead by A read and open none of its events, as for a
    missing id."""
    read: list[str] = []

    async def reading(conn: Any, stream_id: str, **kw: Any) -> Any:
        read.append(stream_id)
        return await read_stream(conn, stream_id, **kw)

    async def opening(conn: Any, events: Any) -> Any:
        read.extend(f"opened {e.stream_id}" for e in events)
        return await open_pairs(conn, events)

    monkeypatch.setattr(reads, "read_stream", reading)
    monkeypatch.setattr(reads, "open_pairs", opening)
    now = datetime.now(UTC).isoformat()
    for lead in (100, 999):
        await get_json(api, f"/v1/leads/{lead}?as_of_version=1", 404)
        await get_json(api, f"/v1/leads/{lead}", 404, params={"as_of": now})
        await get_json(api, f"/v1/leads/{lead}/history", 404)
    assert read == []
    assert (await get_json(api, "/v1/leads/100?as_of_version=1", key=KEY_B))["lead_id"] == 100
    assert read == ["lead-100", "opened lead-100"]


@pytest.mark.parametrize(
    "query",
    [
        "/v1/leads/1?as_of=1700000000",
        "/v1/leads/1?as_of=-1",
        "/v1/leads/1?as_of=1.5",
        "/v1/leads/1?as_of_version=1.0",
        "/v1/leads/1?as_of_version=1e3",
        "/v1/leads/1?as_of_version=%2B1",
        "/v1/leads?after=1e3",
        "/v1/leads?after=-0",
        "/v1/leads?limit=%201",
        "/v1/audit?from=1700000000",
        "/v1/events?after=1.0",
        "/v1/events/stream?after=1e3",
        "/v1/jobs?to=1.5",
        "/v1/jobs?before=1e3",
    ],
)
async def test_a_number_or_time_not_written_as_one_is_refused(
    api: Client, seeded: asyncpg.Pool, query: str
) -> None:
    """A time is RFC 3339 text, never epoch seconds; a whole number is decimal digits, never
    1.0, 1e3, +1 or -0: anything else is a 400 naming the parameter."""
    body = await get_json(api, query, 400)
    assert body["parameter"] == query.split("?", 1)[1].split("=", 1)[0]


async def test_whole_numbers_in_digits_and_rfc_3339_times_are_read(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """Leading zeros, and more digits than a bigint has (a 400 naming it, not a 500)."""
    page = await get_json(api, "/v1/leads?after=003&limit=0001")
    assert [lead["lead_id"] for lead in page["leads"]] == [4]
    assert (await get_json(api, "/v1/leads/1?as_of_version=01"))["version"] == 1
    body = await get_json(api, f"/v1/leads?after={'9' * 5000}", 400)
    assert body["parameter"] == "after"
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    assert (await get_json(api, f"/v1/leads/1?as_of={now}"))["lead_id"] == 1
