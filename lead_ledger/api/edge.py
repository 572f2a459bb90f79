"""The dialect edge: the one way every HTTP route comes in and goes out.

A dialect (a vendor API, the native API, the admin API) is declared once as a `Dialect`: its
name, how its callers authenticate, and its answers to what any route can meet (a body over
LEDGER_MAX_BODY_BYTES, a service refusal it has a shape for, an unexpected failure). A dialect's
module then only translates: decode the vendor's wire format into typed service input, call one
service function, encode the outcome with `json_response`.

    VICIDIAL = Dialect(name="vicidial", authenticate=..., too_large=..., unexpected=...)

    @routes.post("/vicidial/leads/archive")
    @VICIDIAL.route
    async def archive(request: web.Request, principal: Principal) -> web.Response: ...

Anything a handler finds wrong it raises as `Refused(response)`, from however deep it is found;
the route answers it as is. The answer to an unexpected failure is the request middleware's
(api/middleware.py): it logs the failure once, with the request id, and answers in the shape of
the dialect the route declared (`DIALECT`), never with a stack trace in the body.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import msgspec
from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDictProxy

from lead_ledger.api.auth import Principal
from lead_ledger.api.keys import SETTINGS
from lead_ledger.ledger.errors import LedgerError
from lead_ledger.ledger.lead import LeadError
from lead_ledger.service.writer import Context, Origin

REQUEST_ID_HEADER: Final = "X-Request-ID"
REQUEST_ID: Final = web.RequestKey("request_id", str)


def request_id_header(request: web.Request) -> dict[str, str]:
    """The X-Request-ID a response names. The middleware adds it to the response a handler
    returns unsent; a StreamResponse the handler prepares itself has sent its headers by then,
    so it must be given this before `prepare`."""
    return {REQUEST_ID_HEADER: request[REQUEST_ID]}


C = TypeVar("C")  # what a dialect's authentication yields: a Principal, or None where it has none
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Answer = Callable[[], web.Response]
CallerHandler = Callable[[web.Request, C], Awaitable[web.StreamResponse]]

# The most a route that carries one lead (or a login) reads. These routes check their caller
# after reading the body, in the vendor's order of checks: without a limit of their own, any
# client could make the server hold LEDGER_MAX_BODY_BYTES (an upload's limit) per request.
ONE_LEAD_BODY_BYTES: Final = 1024 * 1024


def one_lead_body(handler: CallerHandler[C]) -> CallerHandler[C]:
    """A route whose body is one lead's or a login's: a body past ONE_LEAD_BODY_BYTES (or
    LEDGER_MAX_BODY_BYTES, when lower) is answered too large, in the dialect's shape, as soon
    as it is seen to be (the request's own Content-Length, or the bytes read so far)."""

    @functools.wraps(handler)
    async def limited(request: web.Request, caller: C) -> web.StreamResponse:
        limit = min(ONE_LEAD_BODY_BYTES, request.app[SETTINGS].max_body_bytes)
        return await handler(request.clone(client_max_size=limit), caller)

    return limited


# A refusal the services raise (LedgerError, LeadError) -> the dialect's answer to it; None for
# one the dialect has no answer for, which is then a failure like any other.
Translate = Callable[[Exception], web.Response | None]

_ENCODER: Final = msgspec.json.Encoder()


def json_response(
    body: object,
    status: int = 200,
    *,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> web.Response:
    """Every JSON answer of every dialect: `body` is anything msgspec encodes."""
    return web.Response(
        status=status, body=_ENCODER.encode(body), content_type=content_type, headers=headers
    )


async def readable_form(
    request: web.Request,
) -> MultiDictProxy[str | bytes | bytearray | FileField] | None:
    """The request's form, or None when it cannot be read: a multipart body without a
    boundary, bytes that are not in the form's charset (UnicodeDecodeError, a ValueError), a
    charset Python does not know (LookupError). Each route answers None as a body it cannot
    read, never as a failure of its own."""
    try:
        return await request.post()
    except (ValueError, LookupError):
        return None


class Refused(Exception):  # noqa: N818 - it carries an answer, it is not an error state
    """An answer in the dialect's shape, raised wherever a handler or its parser finds it."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def origin(request: web.Request) -> Origin:
    """Where a request came from, in the service layer's words."""
    return Origin(request_id=request[REQUEST_ID], client_address=request.remote)


def context(request: web.Request, principal: Principal) -> Context:
    """The service context of an authenticated request: the principal's actor and its origin."""
    return origin(request).context(principal.actor)


async def no_authentication(_request: web.Request) -> None:
    """For dialects whose vendor checks the caller inside its own ordered checks (Ozonetel)."""


def _untranslated(_error: Exception) -> web.Response | None:
    return None


@dataclass(frozen=True, slots=True)
class Dialect(Generic[C]):
    """One API dialect's edge: its name, its callers, and its answers to common failures."""

    name: str
    authenticate: Callable[[web.Request], Awaitable[C]]  # raises Refused with the dialect's 401
    too_large: Answer  # the body is over LEDGER_MAX_BODY_BYTES
    unexpected: Answer  # a bug or an outage: logged by the middleware, answered with this
    translate: Translate = _untranslated  # service refusals the dialect answers in its shape

    def route(self, handler: Callable[[web.Request, C], Awaitable[web.StreamResponse]]) -> Handler:
        """A handler of this dialect: authenticated, refusals answered in the dialect's shape."""

        async def authenticated(request: web.Request) -> web.StreamResponse:
            return await handler(request, await self.authenticate(request))

        return self._answering(functools.wraps(handler)(authenticated))

    def _answering(self, handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def answering(request: web.Request) -> web.StreamResponse:
            request[DIALECT] = self
            try:
                return await handler(request)
            except Refused as refused:
                return refused.response
            except web.HTTPRequestEntityTooLarge:
                return self.too_large()
            except (LedgerError, LeadError) as error:
                answer = self.translate(error)
                if answer is None:
                    raise
                return answer

        return answering


# Set by every dialect's routes: the shape the middleware answers an unexpected failure in.
DIALECT: Final[web.RequestKey[Dialect[Any]]] = web.RequestKey("dialect")
