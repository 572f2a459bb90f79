"""Request context, the answer to an unexpected failure, and one canonical log line per request."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Final

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from lead_ledger.api.edge import DIALECT, REQUEST_ID, REQUEST_ID_HEADER
from lead_ledger.api.problems import body_too_large, internal_error

log = structlog.get_logger("lead_ledger.request")
_REQUEST_ID: Final = re.compile(r"[!-~]{1,128}")


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give each request an id, log it once on the way out, never leak a stack trace."""
    request_id = request.headers.get(REQUEST_ID_HEADER, "")
    if not _REQUEST_ID.fullmatch(request_id):
        # An id, not a payload: printable ASCII without spaces, as it goes into the log line,
        # the response's header and event metadata. Bytes that are not UTF-8 reach here as
        # surrogates, which no encoder takes: the request would end in aiohttp's bare 500,
        # unlogged.
        request_id = uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        try:
            response = await handler(request)
        except web.HTTPRequestEntityTooLarge:
            # Raised past a dialect's edge (a body read outside its handler): still its shape,
            # never aiohttp's plain text.
            dialect = request.get(DIALECT)
            response = dialect.too_large() if dialect is not None else body_too_large()
        except web.HTTPException as http_error:
            status = http_error.status
            http_error.headers[REQUEST_ID_HEADER] = request_id
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away (nginx's convention); not a server error
            raise
        except Exception as error:
            if _client_gone(request, error):
                status = 499
                return web.Response(status=status)  # nobody is there to read it
            # Logged here once, with the request id bound; the caller gets the route's dialect
            # shape (problem+json where the route declares none), never the traceback.
            log.exception("unhandled_error", method=request.method, route=_route(request))
            dialect = request.get(DIALECT)
            response = dialect.unexpected() if dialect is not None else internal_error()
        status = response.status
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response
    finally:
        log.info(
            "request",
            method=request.method,
            route=_route(request),
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            client=request.remote,
        )
        structlog.contextvars.unbind_contextvars("request_id")


def _route(request: web.Request) -> str:
    """The route as declared (`/v1/leads/{id}`): a request's path may hold what a client sent
    (a name, an address, a number), and no log line holds lead data. An unmatched path is
    logged by its shape: its first segment when a route starts with it (enough to see which API
    a misdirected client meant), `{}` for every other segment."""
    resource = request.match_info.route.resource
    if resource is not None:
        return resource.canonical
    first, *rest = request.path.removeprefix("/").split("/")
    known = {r.canonical.split("/")[1] for r in request.app.router.resources()}
    return "/" + "/".join([first if first in known else "{}", *("{}" for _ in rest)])


def _client_gone(request: web.Request, error: Exception) -> bool:
    """Whether the failure is the client's leaving: the rest of its body, or a download's next
    chunk, met a connection it has closed (aiohttp's ClientConnectionResetError is a
    ConnectionResetError too). A reset of anything else is a failure like any other."""
    if not isinstance(error, ConnectionResetError):
        return False
    transport = request.transport
    return transport is None or transport.is_closing()
