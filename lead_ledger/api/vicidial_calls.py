"""What every function of Vicidial's non-agent API is at the edge: a handler from the call
(its app, the caller's context and user, the cleaned parameters) to its lines, and how lines
are answered (api/vicidial_non_agent.py routes the calls)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from lead_ledger.api.keys import POOL
from lead_ledger.ledger.connection import Connection
from lead_ledger.service.vicidial_login import ApiUser
from lead_ledger.service.vicidial_params import Params
from lead_ledger.service.writer import Context

Function = Callable[[web.Request, Context, ApiUser, Params], Awaitable[list[str]]]
# A function's service side: its lines from a connection, the caller's context and user and
# the parameters.
ServiceFunction = Callable[[Connection, Context, ApiUser, Params], Awaitable[list[str]]]


def on_connection(function: ServiceFunction) -> Function:
    """The handler that runs `function` on a connection of the app's pool."""

    async def handler(
        request: web.Request, ctx: Context, user: ApiUser, params: Params
    ) -> list[str]:
        async with request.app[POOL].acquire() as conn:
            return await function(conn, ctx, user, params)

    return handler


def text(lines: list[str]) -> web.Response:
    """Vicidial's answer: the lines, each ending in a newline, always HTTP 200."""
    body = "".join(f"{line}\n" for line in lines)
    return web.Response(text=body, content_type="text/plain", charset="utf-8")
