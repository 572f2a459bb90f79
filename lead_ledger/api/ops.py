"""Liveness and readiness: no auth, for load balancers and orchestrators."""

from __future__ import annotations

import asyncio

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
        return json_response({"status": "unavailable", "database": type(error).__name__}, 503)
    return json_response({"status": "ok", "database": "ok"})
