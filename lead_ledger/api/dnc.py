"""The native do-not-call registry: `/v1/dnc` (native key, account-scoped, problem+json;
docs/dnc.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec
from aiohttp import web

from lead_ledger.api import openapi
from lead_ledger.api.auth import Principal
from lead_ledger.api.edge import Refused, context, json_response
from lead_ledger.api.keys import POOL
from lead_ledger.api.native import NATIVE, Cursor, Limit, NoQuery, query_params
from lead_ledger.api.openapi import BAD_REQUEST, UNAUTHORIZED, Response, problem_response
from lead_ledger.api.problems import invalid_body, problem, time_problem, validation_problem
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.dnc_events import DncStatus
from lead_ledger.service import dnc, reads
from lead_ledger.service.inputs import NUL, decimal, decode_json

routes = web.RouteTableDef()

Entries = Annotated[list[dnc.NewDncEntry], msgspec.Meta(max_length=dnc.MAX_ENTRIES)]
NOT_FOUND: Final = problem_response("No such entry in this account")
NO_CAMPAIGN: Final = problem_response("The campaign filter names no campaign of this account")


class DncPage(msgspec.Struct, frozen=True, kw_only=True):
    entries: list[dnc.DncEntry]
    next_after: int | None  # the last entry_id of this page when there is another page


class DncAdded(msgspec.Struct, frozen=True, kw_only=True):
    entries: list[dnc.DncEntry]


class DncQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    campaign: str | None = None
    phone: str | None = None
    status: DncStatus | None = None
    limit: Limit = 100
    after: Cursor = 0


class CheckQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    phone: str
    campaign: str | None = None


class DncPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to change: `status`, `expires_at` (null: never expires), or both."""

    status: DncStatus | None = None
    expires_at: datetime | msgspec.UnsetType | None = msgspec.UNSET


def _utc(at: datetime | None) -> datetime | None:
    # A time without an offset is UTC, as everywhere in the native API.
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _refused(error: dnc.DncError) -> Refused:
    if error.index is None:
        return Refused(invalid_body(error.message))
    field = f"$[{error.index}].{error.field}" if error.field else f"$[{error.index}]"
    return Refused(invalid_body(error.message, field=field))


async def _campaign_id(conn: Connection, account_id: int, name: str | None) -> int | None:
    """The filter's campaign, as /v1/leads takes it (a name, or an id)."""
    try:
        return await reads.campaign_named(conn, account_id, name)
    except reads.UnknownCampaignError:
        raise Refused(problem(404, f"no campaign {name!r}", parameter="campaign")) from None


def _entry_id(request: web.Request) -> int:
    text = request.match_info["id"]
    entry_id = decimal(text, minimum=1)
    if entry_id is None:
        raise Refused(problem(404, f"no entry {text}"))
    return entry_id


@routes.post("/v1/dnc")
@openapi.operation(
    summary="Add numbers to the do-not-call registry, all or none",
    description=(
        "A JSON array of up to 10,000 entries. Each keeps its number from being called in"
        " every campaign of the account, or in `campaign`; only an Active entry that has not"
        " expired blocks. The first entry at fault refuses the whole array (its index is in"
        " `field`): a number that is not one, an unknown campaign, or a number already in that"
        " scope."
    ),
    tags=("native",),
    security=openapi.NATIVE_KEY,
    body=Entries,
    responses={
        201: Response("The entries added", DncAdded),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
    },
)
@NATIVE.route
async def add_entries(request: web.Request, principal: Principal) -> web.StreamResponse:
    query_params(request, NoQuery)
    body = await request.read()
    try:
        entries = decode_json(body, lambda data: msgspec.json.decode(data, type=Entries))
    except msgspec.DecodeError as error:  # also ValidationError: malformed or mistyped
        raise Refused(validation_problem(error)) from error
    beyond = time_problem(entries, "$")
    if beyond is not None:
        return beyond
    for index, entry in enumerate(entries):
        if NUL in entry.phone or NUL in (entry.campaign or ""):
            raise _refused(dnc.DncError("holds a NUL character", index=index))
    entries = [
        msgspec.structs.replace(entry, expires_at=_utc(entry.expires_at)) for entry in entries
    ]
    async with request.app[POOL].acquire() as conn:
        try:
            added = await dnc.add_entries(
                conn, context(request, principal), principal.account_id, entries
            )
        except dnc.DncError as error:
            raise _refused(error) from error
    return json_response(DncAdded(entries=added), status=201)


@routes.get("/v1/dnc")
@openapi.operation(
    summary="List the do-not-call registry, filtered, in entry_id order",
    description="Keyset paging: pass `next_after` back as `after` until it is null.",
    tags=("native",),
    security=openapi.NATIVE_KEY,
    query=DncQuery,
    responses={
        200: Response("A page of entries", DncPage),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: NO_CAMPAIGN,
    },
)
@NATIVE.route
async def list_entries(request: web.Request, principal: Principal) -> web.StreamResponse:
    params = query_params(request, DncQuery)
    async with request.app[POOL].acquire() as conn:
        campaign_id = await _campaign_id(conn, principal.account_id, params.campaign)
        entries = await dnc.list_entries(
            conn,
            principal.account_id,
            campaign_id=campaign_id,
            phone=params.phone,
            status=params.status,
            limit=params.limit + 1,
            after=params.after,
        )
    more = len(entries) > params.limit
    page = entries[: params.limit]
    return json_response(DncPage(entries=page, next_after=page[-1].entry_id if more else None))


@routes.get("/v1/dnc/check")
@openapi.operation(
    summary="Whether a number is blocked now, and by which entries",
    description=(
        "With `campaign`, the account-wide entries and that campaign's; without, the"
        " account-wide ones. Any spelling of the number: it is matched as a dedupe key."
    ),
    tags=("native",),
    security=openapi.NATIVE_KEY,
    query=CheckQuery,
    responses={
        200: Response("The answer", dnc.DncCheck),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: NO_CAMPAIGN,
    },
)
@NATIVE.route
async def check(request: web.Request, principal: Principal) -> web.StreamResponse:
    params = query_params(request, CheckQuery)
    if not dnc.valid_number(params.phone):
        return problem(400, "phone is not a phone number", parameter="phone")
    async with request.app[POOL].acquire() as conn:
        campaign_id = await _campaign_id(conn, principal.account_id, params.campaign)
        answer = await dnc.check(conn, principal.account_id, params.phone, campaign_id)
    return json_response(answer)


@routes.patch("/v1/dnc/{id}")
@openapi.operation(
    summary="Change an entry's status or expiry",
    tags=("native",),
    security=openapi.NATIVE_KEY,
    path={"id": int},
    body=DncPatch,
    responses={
        200: Response("The entry", dnc.DncEntry),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: NOT_FOUND,
    },
)
@NATIVE.route
async def change_entry(request: web.Request, principal: Principal) -> web.StreamResponse:
    entry_id = _entry_id(request)
    query_params(request, NoQuery)
    body = await request.read()
    try:
        patch = decode_json(body, lambda data: msgspec.json.decode(data, type=DncPatch))
    except msgspec.DecodeError as error:
        raise Refused(validation_problem(error)) from error
    if patch.status is None and patch.expires_at is msgspec.UNSET:
        return invalid_body("give status, expires_at or both")
    beyond = time_problem(patch)
    if beyond is not None:
        return beyond
    expires_at = patch.expires_at
    if isinstance(expires_at, datetime):
        expires_at = _utc(expires_at)
    async with request.app[POOL].acquire() as conn:
        try:
            entry = await dnc.change_entry(
                conn,
                context(request, principal),
                principal.account_id,
                entry_id,
                status=patch.status,
                expires_at=expires_at,
            )
        except dnc.DncNotFoundError:
            return problem(404, f"no entry {entry_id}")
    return json_response(entry)


@routes.delete("/v1/dnc/{id}")
@openapi.operation(
    summary="Remove an entry from the registry",
    description=(
        "The number no longer blocks and no longer lists. The entry stays in the log; an"
        " erasure of the number (`POST /v1/erasures`) afterwards removes it from there too."
    ),
    tags=("native",),
    security=openapi.NATIVE_KEY,
    path={"id": int},
    responses={
        204: Response("Removed"),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: NOT_FOUND,
    },
)
@NATIVE.route
async def remove_entry(request: web.Request, principal: Principal) -> web.StreamResponse:
    entry_id = _entry_id(request)
    query_params(request, NoQuery)  # before the removal: a refused request changes nothing
    async with request.app[POOL].acquire() as conn:
        try:
            ctx = context(request, principal)
            await dnc.remove_entry(conn, ctx, principal.account_id, entry_id)
        except dnc.DncNotFoundError:
            return problem(404, f"no entry {entry_id}")
    return web.Response(status=204)
