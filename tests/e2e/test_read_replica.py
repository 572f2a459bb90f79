"""Native reads through a real streaming replica (LEDGER_READ_DATABASE_URL): a primary and a
replica made by pg_basebackup from the embedded server's binaries, replication on local
sockets, the app's writes on the primary and its reads on the replica, and the staleness rule
of X-Ledger-Min-Position."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime

import asyncpg
import pytest

from lead_ledger.api.app import create_app
from lead_ledger.ledger.database import create_pool
from lead_ledger.settings import Settings
from tests.api.test_exports import csv_rows, download, export
from tests.api.test_native import CAMPAIGN_A, KEY_A, A, auth, insert_lead, make_account
from tests.conftest import ADMIN_TOKEN
from tests.replica import Servers, primary_and_replica
from tests.support import Client

WAIT_SECONDS = 0.5


@pytest.fixture
def servers() -> Iterator[Servers]:
    with primary_and_replica() as made:
        yield made


@pytest.fixture
async def primary(servers: Servers) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(servers.primary, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def replica(servers: Servers) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(servers.replica)
    yield conn
    await conn.execute("SELECT pg_wal_replay_resume()")
    await conn.close()


@pytest.fixture
async def app_client(
    servers: Servers, primary: asyncpg.Pool, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    """The app on the primary (it migrates it), its native reads on the replica."""
    settings = Settings(
        admin_token=ADMIN_TOKEN,
        db_pool_min=1,
        db_pool_max=4,
        read_database_url=servers.replica,
        read_wait_seconds=WAIT_SECONDS,
        export_workers=2,  # every export as of a time folded by workers on the replica
        export_parallel_min_leads=1,
    )
    client = await aiohttp_client(create_app(settings, servers.primary))
    await make_account(primary, A, KEY_A, {CAMPAIGN_A: "north"}, "IN")
    return client


async def position_of(primary: asyncpg.Pool, lead_id: int) -> int:
    found: int = await primary.fetchval(
        "SELECT max(position) FROM events WHERE stream_id = $1", f"lead-{lead_id}"
    )
    return found


async def read(api: Client, path: str, position: int | None = None) -> tuple[int, str, object]:
    headers = auth() | ({"X-Ledger-Min-Position": str(position)} if position else {})
    response = await api.get(path, headers=headers)
    body = await response.json()
    return response.status, response.headers.get("X-Ledger-Read-From", ""), body


async def test_reads_come_from_the_replica_and_wait_for_a_position(
    app_client: Client, primary: asyncpg.Pool, replica: asyncpg.Connection
) -> None:
    """A lead written on the primary is read back through the replica once it has replayed its
    event; with replay paused, a read without a position is the replica's stale answer (404),
    one carrying the lead's position waits, then the primary answers it; resumed, the replica
    answers it."""
    await insert_lead(primary, A, CAMPAIGN_A, 1, phone_numbers=["+919876543211"], name="One")
    first = await position_of(primary, 1)
    status, source, body = await read(app_client, "/v1/leads/1", first)
    assert (status, source) == (200, "replica")
    assert isinstance(body, dict)
    assert body["name"] == "One"
    await replica.execute("SELECT pg_wal_replay_pause()")
    await insert_lead(primary, A, CAMPAIGN_A, 2, phone_numbers=["+919876543212"], name="Two")
    second = await position_of(primary, 2)
    status, source, _ = await read(app_client, "/v1/leads/2")
    assert (status, source) == (404, "replica")
    status, source, body = await read(app_client, "/v1/leads/2", second)
    assert (status, source) == (200, "primary")
    assert isinstance(body, dict)
    assert body["name"] == "Two"
    await replica.execute("SELECT pg_wal_replay_resume()")
    status, source, _ = await read(app_client, "/v1/leads/2", second)
    assert (status, source) == (200, "replica")


async def test_every_routed_read_goes_to_the_replica(
    app_client: Client, primary: asyncpg.Pool
) -> None:
    """The list, one lead as of a version, its history and the audit are served by the
    replica; the feed stays on the primary (no X-Ledger-Read-From)."""
    await insert_lead(primary, A, CAMPAIGN_A, 1, phone_numbers=["+919876543211"], name="One")
    position = await position_of(primary, 1)
    for path in (
        "/v1/leads?campaign=north",
        "/v1/leads/1?as_of_version=1",
        "/v1/leads/1/history",
        "/v1/audit",
    ):
        status, source, body = await read(app_client, path, position)
        assert (status, source) == (200, "replica"), (path, body)
    status, source, _ = await read(app_client, "/v1/events", position)
    assert (status, source) == (200, "")


async def test_exports_read_the_replica_once_it_holds_the_log_as_asked(
    app_client: Client, primary: asyncpg.Pool, replica: asyncpg.Connection
) -> None:
    """An export (now, and as of a time by two workers importing the replica's snapshot) is
    read from the replica once it holds the log as it stood when the export was asked for; with
    replay paused behind it, the primary writes the file after the wait. The newest lead is in
    the file either way."""
    await insert_lead(primary, A, CAMPAIGN_A, 1, phone_numbers=["+919876543211"], name="One")
    await insert_lead(primary, A, CAMPAIGN_A, 2, phone_numbers=["+919876543212"], name="Two")
    view = await export(app_client, campaign="north")
    assert view["read_from"] == "replica"
    at = datetime.now(UTC)
    view = await export(app_client, campaign="north", as_of=at.isoformat(), format="jsonl")
    assert (view["read_from"], view["rows"]) == ("replica", 2)
    await replica.execute("SELECT pg_wal_replay_pause()")
    await insert_lead(primary, A, CAMPAIGN_A, 3, phone_numbers=["+919876543213"], name="Three")
    view = await export(app_client, campaign="north")
    assert view["read_from"] == "primary"
    data, _ = await download(app_client, view)
    assert [row["lead_id"] for row in csv_rows(data)] == ["1", "2", "3"]


async def test_a_replica_that_is_down_leaves_the_reads_to_the_primary(
    app_client: Client, primary: asyncpg.Pool, servers: Servers
) -> None:
    """With the replica shut down, a read and an export are answered by the primary instead
    of failing."""
    await insert_lead(primary, A, CAMPAIGN_A, 1, phone_numbers=["+919876543211"], name="One")
    servers.stop_replica()
    status, source, body = await read(app_client, "/v1/leads/1")
    assert (status, source) == (200, "primary"), body
    view = await export(app_client, campaign="north")
    assert (view["read_from"], view["rows"]) == ("primary", 1)


@pytest.mark.parametrize("value", ["0", "-3", "abc", "1.5", "1e3", "99999999999999999999"])
async def test_a_position_that_is_not_one_is_refused(app_client: Client, value: str) -> None:
    """X-Ledger-Min-Position that is no position answers 400 problem+json, naming the header."""
    response = await app_client.get(
        "/v1/leads/1", headers=auth() | {"X-Ledger-Min-Position": value}
    )
    assert response.status == 400
    assert response.content_type == "application/problem+json"
    assert (await response.json())["header"] == "X-Ledger-Min-Position"
