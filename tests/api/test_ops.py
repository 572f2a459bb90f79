"""Ops routes through the real app: liveness, readiness, request ids, no stack traces."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from lead_ledger.api import ops
from lead_ledger.api.keys import POOL
from lead_ledger.api.ops import not_ready_reason
from lead_ledger.ledger.database import with_database
from tests.support import Client


async def test_healthz_answers_ok(client: Client) -> None:
    """/healthz needs no auth and answers 200."""
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


README = Path(__file__).resolve().parents[2] / "README.md"


async def test_the_readme_shows_the_healthz_answer_byte_for_byte(client: Client) -> None:
    """The README's quick start predicts what `curl /healthz` prints: exactly these bytes."""
    readme = README.read_text()
    shown = re.search(r"curl -s http://127\.0\.0\.1:8080/healthz` → `([^`]+)`", readme)
    assert shown is not None
    response = await client.get("/healthz")
    assert (await response.read()).decode() == shown.group(1)


async def test_readyz_checks_the_database(client: Client) -> None:
    """/readyz answers 200 when the database answers."""
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "database": "ok"}


async def test_readyz_is_503_when_the_database_is_gone(
    client: Client, database_url: str, postgres_server_url: str
) -> None:
    """Dropping the database under the service turns readiness to 503, not a 500, saying so."""
    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(with_database(postgres_server_url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json()) == {"status": "unavailable", "database": "no such database"}


async def test_every_response_carries_a_request_id(client: Client) -> None:
    """A caller's X-Request-ID is echoed; otherwise one is made up."""
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    made = await client.get("/healthz")
    assert len(made.headers["X-Request-ID"]) == 32


async def test_unknown_route_is_a_plain_404(client: Client) -> None:
    """An unknown path is 404 with the request id, not an error page with a trace."""
    response = await client.get("/no/such/route")
    assert response.status == 404
    assert "X-Request-ID" in response.headers
    assert "Traceback" not in await response.text()


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://nobody@127.0.0.1:1/none",  # connection refused
        "postgresql://nobody@/none?host=/nonexistent/socket/dir",  # no socket file
    ],
)
async def test_readyz_says_unreachable_when_nothing_listens(
    client: Client, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing listening where the database was, /readyz is 503 with a short reason that
    names no exception or internal detail."""
    # The refusal is immediate; a busy machine may take longer than 2 s to close the expired
    # connections first, which would answer the timeout's reason instead.
    monkeypatch.setattr(ops, "READY_TIMEOUT_SECONDS", 30.0)
    pool = client.app[POOL]
    pool.set_connect_args(dsn=dsn)
    await pool.expire_connections()
    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.json() == {"status": "unavailable", "database": "unreachable"}


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (TimeoutError(), "no answer within 2 s"),
        (ConnectionRefusedError(111, "Connect call failed ('10.0.0.5', 5432)"), "unreachable"),
        (FileNotFoundError(2, "No such file or directory"), "unreachable"),
        (
            asyncpg.InvalidPasswordError("password authentication failed for user x"),
            "login refused",
        ),
        (asyncpg.TooManyConnectionsError("sorry, too many clients already"), "out of resources"),
        (
            asyncpg.CannotConnectNowError("the database system is starting up"),
            "shutting down or starting",
        ),
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), "connection lost"),
        (asyncpg.InterfaceError("pool is closing"), "database error"),
        (asyncpg.PostgresError("anything else"), "database error"),
    ],
)
def test_readyz_reasons_are_a_few_fixed_words(error: BaseException, reason: str) -> None:
    """Each way the database can fail to answer has its short reason, without its message."""
    assert not_ready_reason(error) == reason


async def test_a_request_id_that_is_not_printable_ascii_is_replaced(client: Client) -> None:
    """Bytes that are not UTF-8, a space, a letter beyond ASCII: the id is one the server
    makes, and the request is answered as any other (not aiohttp's bare 500, unlogged)."""
    port = client.server.port
    for raw in (b"abc\xff\xfe", b"two words", b"caf\xc3\xa9"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: " + raw + b"\r\n"
            b"Connection: close\r\n\r\n"
        )
        await writer.drain()
        answer = await reader.read()
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), answer
        assert body == b'{"status":"ok"}'
        (request_id,) = [
            line.split(b": ", 1)[1] for line in head.split(b"\r\n") if line.startswith(b"X-Req")
        ]
        assert re.fullmatch(rb"[0-9a-f]{32}", request_id), request_id
