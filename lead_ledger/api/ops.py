"""Liveness and readiness: no auth, for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
from typing import Final

import asyncpg
from aiohttp import web

from lead_ledger.api.edge import json_response
from lead_ledger.api.keys import POOL

routes = web.RouteTableDef()

READY_TIMEOUT_SECONDS = 2.0


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    """The process is up and serving HTTP."""
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """The process can serve requests: the database answers within the timeout."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            async with request.app[POOL].acquire() as conn:
                await conn.fetchval("SELECT 1")
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        return json_response({"status": "unavailable", "database": not_ready_reason(error)}, 503)
    return json_response({"status": "ok", "database": "ok"})


# PostgreSQL's errors by SQLSTATE class (its first two characters), in the words /readyz uses.
_SQLSTATE_REASONS: Final = {
    "08": "connection lost",  # connection exception
    "28": "login refused",  # invalid authorization specification: role or password
    "3D": "no such database",  # invalid catalog name
    "53": "out of resources",  # insufficient resources: too many connections, disk full
    "57": "shutting down or starting",  # operator intervention: shutdown, cannot connect now
}


def not_ready_reason(error: BaseException) -> str:
    """What keeps the database from answering, in a few fixed words: the body is public
    (unauthenticated), so it names no address, role, server message or exception."""
    if isinstance(error, TimeoutError):
        # Before OSError: TimeoutError is one. The server is there but slow, or packets vanish.
        return f"no answer within {READY_TIMEOUT_SECONDS:g} s"
    if isinstance(error, OSError):
        return "unreachable"  # refused, no socket file, no route to the host
    if isinstance(error, asyncpg.PostgresError):
        return _SQLSTATE_REASONS.get((error.sqlstate or "")[:2], "database error")
    if isinstance(error, asyncpg.ConnectionDoesNotExistError):
        return "connection lost"
    return "database error"
