"""Native reads served by a streaming replica (LEDGER_READ_DATABASE_URL), and the staleness rule.

The lead list, one lead (now or as of a time), its history and the audit read from the replica's
pool when one is configured; every decision (duplicates, do-not-call, safe deletes), every write
and the safe feed (`/v1/events`, SSE, subscriptions) stay on the primary. A replica is behind
the primary by its replay lag. A client that must see its own write sends the position of that
write's event (from the feed, SSE, a subscription delivery or a lead's history) as
`X-Ledger-Min-Position`: the read waits until the replica holds the event at that position, for
up to LEDGER_READ_WAIT_SECONDS, and is otherwise served by the primary. Every such read says
where it was served in `X-Ledger-Read-From` (`replica` or `primary`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import structlog
from aiohttp import web

from lead_ledger.api.edge import Refused
from lead_ledger.api.keys import POOL, READ_POOL, SETTINGS
from lead_ledger.api.openapi import Header
from lead_ledger.api.problems import problem
from lead_ledger.ledger.connection import Connection
from lead_ledger.service.inputs import decimal
from lead_ledger.service.replica import REPLICA_ERRORS, replayed

log = structlog.get_logger(__name__)
T = TypeVar("T")

MIN_POSITION: Final = "X-Ledger-Min-Position"
READ_FROM: Final = "X-Ledger-Read-From"
_SERVED_FROM: Final = web.RequestKey("ledger_read_from", str)
# The request headers of a read a replica may serve, for /openapi.json.
READ_HEADERS: Final = {
    MIN_POSITION: Header(
        "Read at least this far: the position of an event (from the feed, SSE, a subscription"
        " or a lead's history). With a replica configured, the read waits for the replica to"
        " hold that event, up to LEDGER_READ_WAIT_SECONDS, else the primary answers. The"
        " answer's X-Ledger-Read-From says which did.",
        {"type": "string", "pattern": "^[0-9]+$"},
    )
}


def min_position(request: web.Request) -> int | None:
    """The request's X-Ledger-Min-Position; a 400 problem (Refused) when it is not a whole
    number of at least 1 within bigint."""
    text = request.headers.get(MIN_POSITION)
    if text is None:
        return None
    # decimal: ASCII digits only, and no int() of more digits than a bigint has (past 4,300
    # digits int() raises an error of its own).
    position = decimal(text.strip(), minimum=1)
    if position is None:
        raise Refused(
            problem(
                400,
                f"{MIN_POSITION} must be an event position (a whole number from 1), not {text!r}",
                title="Invalid header",
                header=MIN_POSITION,
            )
        )
    return position


async def on_read_pool(request: web.Request, read: Callable[[Connection], Awaitable[T]]) -> T:
    """`read` run on the replica, unless no replica is configured, it has not replayed the
    request's X-Ledger-Min-Position in time, or it fails (down, restarting, or a query
    cancelled by a conflict with its recovery); then on the primary."""
    position = min_position(request)
    replica = request.app.get(READ_POOL)
    if replica is not None:
        try:
            async with replica.acquire() as conn:
                wait = request.app[SETTINGS].read_wait_seconds
                if position is None or await replayed(conn, position, wait):
                    result = await read(conn)
                    request[_SERVED_FROM] = "replica"
                    return result
        except REPLICA_ERRORS as error:
            # The error's type and SQLSTATE only: a message may quote a value of the read.
            log.warning(
                "replica_read_failed",
                error=type(error).__name__,
                sqlstate=getattr(error, "sqlstate", None),
            )
    async with request.app[POOL].acquire() as conn:
        result = await read(conn)
    if replica is not None:
        request[_SERVED_FROM] = "primary"
    return result


async def _say_where(request: web.Request, response: web.StreamResponse) -> None:
    served = request.get(_SERVED_FROM)
    if served is not None:
        response.headers[READ_FROM] = served


def setup(app: web.Application) -> None:
    app.on_response_prepare.append(_say_where)
