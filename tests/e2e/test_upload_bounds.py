"""A real `serve` process survives the issue's xlsx bomb (issue 11, item 1)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests import workbooks
from tests.e2e.test_cli import _gone
from tests.support import serve_process, stop, until_ready

ADMIN_TOKEN = "e2e-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
UPLOAD = "/endpoint/dailer/data/bulk/upload"

pytestmark = pytest.mark.slow


@pytest.fixture
async def server(
    database_factory: Callable[..., Awaitable[str]],
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """`lead-ledger serve` on a fresh database and a free port; stopped after the test."""
    served = serve_process(await database_factory(), LEDGER_ADMIN_TOKEN=ADMIN_TOKEN)
    try:
        await until_ready(served)
        yield served.base_url, served.process
    finally:
        if served.process.poll() is None:
            stop(served)


async def _admin(session: aiohttp.ClientSession, base: str, path: str, body: object) -> Any:
    async with session.post(f"{base}/v1/admin{path}", json=body, headers=ADMIN) as response:
        assert response.status < 300, await response.text()
        return await response.json()


async def _upload(
    session: aiohttp.ClientSession, base: str, key: str, data: bytes
) -> tuple[int, Any]:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in (("username", "acme"), ("apiKey", key), ("campaignName", "sales")):
        form.add_field(name, value)
    form.add_field("callBackUrl", "http://example.invalid/callback")
    form.add_field("file", data, filename="leads.xlsx", content_type="application/octet-stream")
    async with session.post(f"{base}{UPLOAD}", data=form) as response:
        return response.status, await response.json()


async def test_serve_survives_the_corner_bomb(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    """The bomb answers "Data limit exceeded" (no reset); healthz and a normal upload follow,
    and the parser's worker ends with the server."""
    base, process = server
    async with aiohttp.ClientSession() as session:
        await _admin(session, base, "/accounts", {"name": "acme", "default_region": "IN"})
        key = (await _admin(session, base, "/accounts/acme/credentials", {"api": "ozonetel"}))[
            "key"
        ]
        await _admin(session, base, "/accounts/acme/campaigns", {"name": "sales"})
        limits = {"rate_limits": {"ozonetel_bulk_per_minute": 100}}
        async with session.patch(
            f"{base}/v1/admin/accounts/acme/settings", json=limits, headers=ADMIN
        ) as response:
            assert response.status < 300

        assert await _upload(session, base, key, workbooks.corner_bomb()) == (
            200,
            {"status": "error", "message": "Data limit exceeded"},
        )
        assert process.poll() is None
        async with session.get(f"{base}/healthz") as response:
            assert response.status == 200
        assert await _upload(session, base, key, workbooks.phones(3)) == (
            200,
            {"status": "success", "message": "Data processing"},
        )
        # The parser's worker is the server's child and ends with it, even when it is killed.
        workers = _parser_workers_of(process.pid)
        assert len(workers) == 1
        process.kill()
        process.wait()
        assert _gone(workers)


def _parser_workers_of(pid: int) -> set[int]:
    """Live file parser worker processes whose parent is `pid` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            state, parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            cmdline = (entry / "cmdline").read_bytes()
            if int(parent) == pid and state != "Z" and b"file_parser" in cmdline:
                found.add(int(entry.name))
    return found
