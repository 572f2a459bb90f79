"""The native API: leads, their past and history, the audit trail and the event feed.

Every route takes `Authorization: Bearer <native key>` and sees only the key's account; errors
are RFC 9457 problem+json. Handlers decode the query into a Struct, call one read, encode.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Final, TypeVar

import asyncpg
import msgspec
import structlog
from aiohttp import web

from lead_ledger.api import openapi
from lead_ledger.api.auth import Principal, bearer_token, find_principal, still_valid
from lead_ledger.api.edge import Dialect, Refused, json_response, request_id_header
from lead_ledger.api.keys import DATABASE_URL, POOL, SETTINGS
from lead_ledger.api.openapi import BAD_REQUEST, UNAUTHORIZED, Response, problem_response
from lead_ledger.api.problems import (
    bad_parameter,
    body_too_large,
    internal_error,
    problem,
)
from lead_ledger.api.query_fields import field_kinds
from lead_ledger.api.read_routing import READ_HEADERS, on_read_pool
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import RecordedEvent
from lead_ledger.ledger.events import EVENT_TAGS, CredentialRevoked, decode_event
from lead_ledger.ledger.feed import CHANNEL, POLL_SECONDS, FeedEntry
from lead_ledger.ledger.opening import shown_records
from lead_ledger.ledger.store import read_feed
from lead_ledger.service import reads
from lead_ledger.service.inputs import (
    BIGINT_MAX,
    INTEGER_MAX,
    NUL_REASON,
    OUT_OF_RANGE,
    decimal,
    nul_name,
    shown,
    time_out_of_range,
)
from lead_ledger.service.worker import DATABASE_UNAVAILABLE, Wakes, fanned_out

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

QUERY_TITLE: Final = "Invalid query parameter"
S = TypeVar("S", bound=msgspec.Struct)

# Set on shutdown so open event streams end cleanly instead of being cancelled mid-write.
STREAMS_CLOSING: Final = web.AppKey("native_streams_closing", asyncio.Event)
FEED_WAKES: Final = web.AppKey("native_feed_wakes", Wakes)
# Stream reads at once: every commit wakes every open stream, and each then reads; at most
# half the pool reads for streams, the rest is the requests'.
STREAM_READS: Final = web.AppKey("native_stream_reads", asyncio.Semaphore)
STREAM_BATCH: Final = 200  # events a stream reads with one connection before it gives it back
HEARTBEAT_SECONDS = 15.0  # a comment line this often keeps proxies from closing idle streams
STREAM_RECONNECT_SECONDS = 1.0  # between tries for a new connection when the database dropped one
STREAM_BUFFER: Final = 1000  # events read ahead of a slow client before the reader waits
_CREDENTIAL_REVOKED: Final = EVENT_TAGS[CredentialRevoked]

Limit = Annotated[int, msgspec.Meta(ge=1, le=1000)]
# Positions are bigint, stream versions integer: past those no row exists, and PostgreSQL would
# refuse the parameter rather than find nothing.
Cursor = Annotated[int, msgspec.Meta(ge=0, le=BIGINT_MAX)]
Version = Annotated[int, msgspec.Meta(ge=1, le=INTEGER_MAX)]


def setup(app: web.Application) -> None:
    """Register the routes, the one LISTEN every event stream waits on, and the shutdown hook
    that ends open event streams."""
    app[STREAMS_CLOSING] = asyncio.Event()
    app.on_shutdown.append(_close_streams)
    app.cleanup_ctx.append(_feed_wakes)
    app.add_routes(routes)


async def _feed_wakes(app: web.Application) -> AsyncIterator[None]:
    # On a connection of its own (not the pool's), for as long as the app runs.
    app[STREAM_READS] = asyncio.Semaphore(max(1, app[SETTINGS].db_pool_max // 2))
    async with fanned_out(app[POOL], CHANNEL, app[DATABASE_URL]) as wakes:
        app[FEED_WAKES] = wakes
        yield


async def _close_streams(app: web.Application) -> None:
    app[STREAMS_CLOSING].set()


async def _authenticate(request: web.Request) -> Principal:
    principal = await find_principal(request, bearer_token(request) or "", "native")
    if principal is None:
        raise Refused(
            problem(
                401,
                "send Authorization: Bearer <key> with a native key",
                headers={"WWW-Authenticate": 'Bearer realm="lead-ledger"'},
            )
        )
    return principal


# The native API's routes, and GET /v1/jobs/{id} (api/jobs.py): native keys, problem+json.
NATIVE: Final = Dialect(
    name="native",
    authenticate=_authenticate,
    too_large=body_too_large,
    unexpected=internal_error,
)


class NoQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The query of a route that takes no parameters: any one given is refused."""


def query_params(request: web.Request, kind: type[S]) -> S:
    """The query string as `kind`; a 400 problem naming the parameter when it is not one."""
    # Strict: a time only from RFC 3339 text (never epoch seconds), a whole number only from
    # decimal digits (never 1.0 or 1e3). Unknown parameters are refused, so a misspelt filter is
    # an error rather than a silently unfiltered page.
    nul = nul_name(request.query.items())
    if nul is not None:  # PostgreSQL text cannot hold one: refused, never looked up
        raise Refused(bad_parameter(nul, NUL_REASON))
    # One value each, never empty: a second value would be dropped unread, and an empty filter
    # would read as no filter at all.
    for given in dict.fromkeys(request.query):
        values = request.query.getall(given)
        if len(values) > 1 or not values[0]:
            reason = "is given more than once" if len(values) > 1 else "must not be empty"
            raise Refused(
                problem(400, f"{shown(given)} {reason}", title=QUERY_TITLE, parameter=shown(given))
            )
    try:
        params = msgspec.convert(_typed(request, kind), kind)
    except msgspec.ValidationError as error:
        message = str(error)
        name = _parameter_named(message)
        raise Refused(problem(400, message, title=QUERY_TITLE, parameter=name)) from error
    beyond = time_out_of_range(params)
    if beyond is not None:
        raise Refused(problem(400, f"{beyond} {OUT_OF_RANGE}", title=QUERY_TITLE, parameter=beyond))
    return params


def _typed(request: web.Request, kind: type[S]) -> dict[str, object]:
    """The query as `kind` takes it: the value of a whole-number parameter as its int, when it
    is ASCII decimal digits (else a 400 naming it); every other value as the text it is."""
    values: dict[str, object] = dict(request.query)
    whole = {name for name, one in field_kinds(kind).items() if one == "whole_number"}
    for name in whole & values.keys():
        text = request.query[name]
        if not text.isascii() or not text.isdigit():
            raise Refused(
                problem(
                    400,
                    f"{shown(name)} must be a whole number in decimal digits (0-9)",
                    title=QUERY_TITLE,
                    parameter=shown(name),
                )
            )
        # Past a bigint (with more digits than int() takes, too): one past every range, which
        # msgspec then refuses saying what the most is.
        number = decimal(text.lstrip("0") or "0")
        values[name] = BIGINT_MAX + 1 if number is None else number
    return values


# How msgspec names the field of a query it could not convert: a parameter not given, or not
# known, at the start; one of the wrong type or range at the end (`... - at `$.limit``).
_NAMING_PREFIXES: Final = ("Object missing required field `", "Object contains unknown field `")


def _parameter_named(message: str) -> str | None:
    """The parameter msgspec's message about a query names, or None."""
    for prefix in _NAMING_PREFIXES:
        if message.startswith(prefix):
            return message.removeprefix(prefix).removesuffix("`")
    if "`$." in message:
        return message.rsplit("`$.", 1)[1].removesuffix("`")
    return None


def _lead_id(request: web.Request) -> int:
    text = request.match_info["id"]
    lead_id = decimal(text, minimum=1)
    if lead_id is None:  # not a possible id is reported like any missing lead
        raise Refused(_no_lead(text))
    return lead_id


def _no_lead(lead_id: object) -> web.Response:
    return problem(404, f"no lead {lead_id}")


# --- leads ----------------------------------------------------------------------------------------


class LeadsQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    campaign: str | None = None
    phone: str | None = None
    user_data: str | None = None
    limit: Limit = 100
    after: Cursor = 0


class AsOfQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    as_of: datetime | None = None
    as_of_version: Version | None = None


class History(msgspec.Struct, frozen=True, kw_only=True):
    lead_id: int
    events: list[reads.EventView]


NOT_FOUND: Final = problem_response("No such lead in this account")


@routes.get("/v1/leads")
@openapi.operation(
    summary="List leads, filtered, in lead_id order",
    description=(
        "Keyset paging: pass `next_after` back as `after` until it is null. Each page reads the"
        " leads committed then, so a lead committed late (a bulk job's) can fall behind a page"
        " already read: to see every insert, follow /v1/events."
    ),
    tags=("native",),
    security=openapi.NATIVE_KEY,
    headers=READ_HEADERS,
    query=LeadsQuery,
    responses={
        200: Response("A page of leads", reads.LeadPage),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: problem_response("The campaign filter names no campaign of this account"),
    },
)
@NATIVE.route
async def list_leads(request: web.Request, principal: Principal) -> web.StreamResponse:
    params = query_params(request, LeadsQuery)
    query = reads.LeadQuery(**msgspec.structs.asdict(params))
    try:
        page = await on_read_pool(
            request, lambda conn: reads.find_leads(conn, principal.account_id, query)
        )
    except reads.UnknownCampaignError:
        return problem(404, f"no campaign {params.campaign!r}", parameter="campaign")
    return json_response(page)


@routes.get("/v1/leads/{id}")
@openapi.operation(
    summary="One lead: now, or as it was at a time or version",
    description=(
        "Without `as_of`/`as_of_version` the live lead; with one of them the state then, folded"
        " from the lead's events. A time without an offset is UTC."
    ),
    tags=("native",),
    security=openapi.NATIVE_KEY,
    headers=READ_HEADERS,
    path={"id": int},
    query=AsOfQuery,
    responses={
        200: Response("The lead", reads.LeadView),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: NOT_FOUND,
    },
)
@NATIVE.route
async def get_lead(request: web.Request, principal: Principal) -> web.StreamResponse:
    lead_id = _lead_id(request)
    params = query_params(request, AsOfQuery)
    if params.as_of is not None and params.as_of_version is not None:
        return problem(400, "give as_of or as_of_version, not both", parameter="as_of_version")
    at = params.as_of
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)

    async def read(conn: Connection) -> reads.LeadView | None:
        if at is None and params.as_of_version is None:
            return await reads.get_lead(conn, principal.account_id, lead_id)
        return await reads.lead_as_of(
            conn, principal.account_id, lead_id, at=at, version=params.as_of_version
        )

    lead = await on_read_pool(request, read)
    return _no_lead(lead_id) if lead is None else json_response(lead)


@routes.get("/v1/leads/{id}/history")
@openapi.operation(
    summary="Every event of a lead, with actor and field-level changes",
    tags=("native",),
    security=openapi.NATIVE_KEY,
    headers=READ_HEADERS,
    path={"id": int},
    responses={
        200: Response("The history", History),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: NOT_FOUND,
    },
)
@NATIVE.route
async def lead_history(request: web.Request, principal: Principal) -> web.StreamResponse:
    lead_id = _lead_id(request)
    query_params(request, NoQuery)
    events = await on_read_pool(
        request, lambda conn: reads.lead_history(conn, principal.account_id, lead_id)
    )
    return (
        _no_lead(lead_id)
        if events is None
        else json_response(History(lead_id=lead_id, events=events))
    )


# --- audit and feed -------------------------------------------------------------------------------


_EVENT_TYPE_NAMES: Final = frozenset(EVENT_TAGS.values())


class AuditParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    dialect: str | None = None
    actor: str | None = None  # a credential id or a username
    type: str | None = None  # one event type, or several separated by commas
    from_: datetime | None = msgspec.field(name="from", default=None)  # inclusive
    to: datetime | None = None  # exclusive
    after: Cursor = 0
    limit: Limit = 100


class FeedQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    after: Cursor = 0
    limit: Limit = 100


class StreamQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    after: Cursor = 0


def as_utc(value: datetime | None) -> datetime | None:
    """A time without an offset is UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@routes.get("/v1/audit")
@openapi.operation(
    summary="The account's events, filtered by actor, dialect, type and time",
    description="Keyset paging by position: pass `next_after` back as `after`.",
    tags=("native",),
    security=openapi.NATIVE_KEY,
    headers=READ_HEADERS,
    query=AuditParams,
    responses={
        200: Response("A page of events", reads.EventPage),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
    },
)
@NATIVE.route
async def audit(request: web.Request, principal: Principal) -> web.StreamResponse:
    params = query_params(request, AuditParams)
    types = [t.strip() for t in params.type.split(",") if t.strip()] if params.type else None
    unknown = sorted(set(types or ()) - _EVENT_TYPE_NAMES)
    if types == []:  # "," or " ": no type named, which must not read as every type
        raise Refused(problem(400, "type names no event type", title=QUERY_TITLE, parameter="type"))
    if unknown:  # a misspelt type would otherwise find nothing, and look like no events
        raise Refused(
            problem(
                400,
                f"no event type {', '.join(unknown)}; the types are"
                f" {', '.join(sorted(_EVENT_TYPE_NAMES))}",
                title=QUERY_TITLE,
                parameter="type",
            )
        )
    query = reads.AuditQuery(
        dialect=params.dialect,
        actor=params.actor,
        types=types,
        from_=as_utc(params.from_),
        to=as_utc(params.to),
        after=params.after,
        limit=params.limit,
    )
    page = await on_read_pool(
        request, lambda conn: reads.audit_events(conn, principal.account_id, query)
    )
    return json_response(page)


@routes.get("/v1/events")
@openapi.operation(
    summary="The account's safe global feed",
    description="Committed events only, never skipping a late commit; resume with `after`.",
    tags=("native",),
    security=openapi.NATIVE_KEY,
    query=FeedQuery,
    responses={
        200: Response("The next events", reads.FeedPage),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
    },
)
@NATIVE.route
async def events(request: web.Request, principal: Principal) -> web.StreamResponse:
    params = query_params(request, FeedQuery)
    async with request.app[POOL].acquire() as conn:
        page = await reads.feed_page(
            conn, principal.account_id, after=params.after, limit=params.limit
        )
    return json_response(page)


@routes.get("/v1/events/stream")
@openapi.operation(
    summary="The account's feed as server-sent events",
    description=(
        "Each event is `id: <position>`, `event: <type>`, `data: <feed entry JSON>`. Resume with"
        " the Last-Event-ID header (or `after`); a comment line arrives every 15 s. The stream"
        " ends when its key is revoked: right after the key's own CredentialRevoked event, and"
        " at its next read of the feed after a revocation however made (events it read ahead"
        " before that read may still be sent)."
    ),
    tags=("native",),
    security=openapi.NATIVE_KEY,
    query=StreamQuery,
    headers={"Last-Event-ID": "The last position received; wins over `after`."},
    responses={
        200: Response("An endless event stream", str, "text/event-stream"),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
    },
)
@NATIVE.route
async def event_stream(request: web.Request, principal: Principal) -> web.StreamResponse:
    after = query_params(request, StreamQuery).after
    last_id = request.headers.get("Last-Event-ID", "").strip()
    if last_id:
        # A reconnecting EventSource keeps its first URL, so the header is the newer cursor.
        position = decimal(last_id)
        if position is None:
            return problem(400, "Last-Event-ID must be a position", parameter="Last-Event-ID")
        after = position

    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx would otherwise hold events back
            **request_id_header(request),
        }
    )
    await response.prepare(request)
    queue: asyncio.Queue[RecordedEvent] = asyncio.Queue(maxsize=STREAM_BUFFER)
    pump = asyncio.create_task(_pump(request.app, principal, after, queue))
    closing = request.app.get(STREAMS_CLOSING) or asyncio.Event()
    try:
        await _relay(request, response, queue, pump, closing)
    except ConnectionResetError:
        pass  # the client went away mid-write: nothing left to tell it
    finally:
        pump.cancel()
        await asyncio.wait([pump])
        if not pump.cancelled() and (error := pump.exception()) is not None:
            log.error("event_stream_failed", error=repr(error), account_id=principal.account_id)
    return response


async def _pump(
    app: web.Application, principal: Principal, after: int, queue: asyncio.Queue[RecordedEvent]
) -> None:
    """Queue the account's events after `after` for as long as the stream lasts.

    A connection is held only to read a batch (and open it): waiting for the next event, or
    for a slow client to take the last ones, holds none, so open streams never take the pool
    from the requests. A connection the database drops (a restart, a terminated session) is
    replaced, and the feed goes on after the last event queued: the client sees a pause, never
    a gap, a repeat or an end.

    The stream's credential is checked again before every read (at least every POLL_SECONDS):
    once it no longer holds (revoked by any path), what was queued and not sent is dropped and
    the stream ends. The stream's own CredentialRevoked event is sent, and ends it at once."""
    wakes = app[FEED_WAKES]
    while True:
        woken = wakes.next()  # before the read: a commit announced after it wakes the wait
        try:
            shown = await _next_batch(app, principal, after)
        except (*DATABASE_UNAVAILABLE, asyncpg.InternalClientError) as error:
            # InternalClientError: a connection the pool handed out just as the server ended
            # its session, before the client saw the socket close ("cannot switch to state").
            reason = type(error).__name__
            log.warning("event_stream_reconnecting", account_id=principal.account_id, error=reason)
            await asyncio.sleep(STREAM_RECONNECT_SECONDS)
            continue
        if shown is None:
            while not queue.empty():
                queue.get_nowait()
            log.info("event_stream_credential_ended", credential_id=principal.credential_id)
            return
        for event in shown:
            await queue.put(event)
            after = event.position
            if _revokes(event, principal):
                log.info("event_stream_credential_ended", credential_id=principal.credential_id)
                return
        if len(shown) < STREAM_BATCH:
            # The fence may hold back a commit whose NOTIFY came before an older transaction
            # ended (ledger/feed.py): the poll interval covers it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await woken.wait()


async def _next_batch(
    app: web.Application, principal: Principal, after: int
) -> list[RecordedEvent] | None:
    """The account's next events after `after`, opened; None when the principal's credential
    no longer holds. Checked first, on the same connection: a revocation committed after the
    check is in the feed the read then sees, before any event committed after it."""
    async with app[STREAM_READS], app[POOL].acquire() as conn:
        if not await still_valid(conn, principal):
            return None
        batch = await read_feed(
            conn, after=after, limit=STREAM_BATCH, account_id=principal.account_id
        )
        # Opened here, on the reader's connection: the relay has none.
        return await shown_records(conn, batch)


def _revokes(event: RecordedEvent, principal: Principal) -> bool:
    """Whether `event` is the revocation of `principal`'s credential."""
    if event.type != _CREDENTIAL_REVOKED:
        return False
    try:
        revoked = decode_event(event)
    except msgspec.DecodeError:  # a foreign writer's body: not a revocation this can read
        return False
    return (
        isinstance(revoked, CredentialRevoked)
        and revoked.account_id == principal.account_id
        and revoked.credential_id == principal.credential_id
    )


async def _relay(
    request: web.Request,
    response: web.StreamResponse,
    queue: asyncio.Queue[RecordedEvent],
    pump: asyncio.Task[None],
    closing: asyncio.Event,
) -> None:
    """Write queued events and heartbeats until the client, the reader or the app stops.

    Waits in short slices so a disconnect or shutdown is noticed within a second even when no
    event arrives (aiohttp does not cancel handlers when a client disconnects).
    """
    loop = asyncio.get_running_loop()
    last_write = loop.time()
    while not closing.is_set() and not (pump.done() and queue.empty()):
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        try:
            async with asyncio.timeout(min(1.0, HEARTBEAT_SECONDS)):
                event = await queue.get()
        except TimeoutError:
            if loop.time() - last_write >= HEARTBEAT_SECONDS:
                await response.write(b": heartbeat\n\n")
                last_write = loop.time()
            continue
        await response.write(sse_message(reads.shown_entry(event)))
        last_write = loop.time()


def sse_message(entry: FeedEntry) -> bytes:
    # JSON from msgspec and jsonb is one line, so `data:` needs no splitting.
    data = msgspec.json.encode(entry)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (entry.position, entry.type.encode(), data)
