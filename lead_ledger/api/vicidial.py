"""TForge's Vicidial lead archive API: `POST /vicidial/leads/archive` and `.../dearchive`.

`Authorization: Key=<vicidial credential>`; answers in the vendor's shapes and messages (seed
003, docs/vicidial.md). Handlers check the office-hours window (the vendor does so before it
reads the body), parse the body (api/vicidial_wire.py), call one service function and encode.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from lead_ledger.api import openapi
from lead_ledger.api.auth import Principal, find_principal
from lead_ledger.api.edge import Dialect, Refused, context, json_response
from lead_ledger.api.keys import CLOCK, POOL
from lead_ledger.api.openapi import Response
from lead_ledger.api.vicidial_wire import (
    ARCHIVE_IN_HOURS,
    DEARCHIVE_OUT_OF_HOURS,
    MISSING,
    SUCCESS,
    TOO_LARGE,
    UNAUTHORIZED,
    UNEXPECTED,
    LeadErrors,
    Message,
    Processed,
    lead_errors,
    parse_archive,
    parse_dearchive,
)
from lead_ledger.service import vicidial
from lead_ledger.service.leads import ArchiveCounts
from lead_ledger.service.vicidial import ArchiveRequest, DearchiveRequest, MissingLeads, Route

routes = web.RouteTableDef()

SECURITY: Final = openapi.api_key_header(
    "vicidialKey", "Authorization", "`Key=<key>` with a credential of dialect `vicidial`."
)


async def _authenticate(request: web.Request) -> Principal:
    """`Authorization: Key=<key>` (the scheme's case is not significant)."""
    header = request.headers.get("Authorization", "").strip()
    scheme, equals, key = header.partition("=")
    key = key.strip() if equals and scheme.strip().lower() == "key" else ""
    principal = await find_principal(request, key, "vicidial")
    if principal is None:
        raise Refused(json_response(Message(UNAUTHORIZED), 401))
    return principal


VICIDIAL: Final = Dialect(
    name="vicidial",
    authenticate=_authenticate,
    too_large=lambda: lead_errors(413, TOO_LARGE),
    unexpected=lambda: lead_errors(500, UNEXPECTED),
)

_WINDOW_CLOSED: Final = {"archive": ARCHIVE_IN_HOURS, "dearchive": DEARCHIVE_OUT_OF_HOURS}


async def _window_checked_body(request: web.Request, principal: Principal, route: Route) -> bytes:
    """The body, once the office-hours window allows the route (the vendor's first check)."""
    now = request.app[CLOCK]()
    if await vicidial.closed_window(request.app[POOL], principal.account_id, now, route):
        raise Refused(json_response(Message(_WINDOW_CLOSED[route]), 403))
    return await request.read()


def _answer(outcome: ArchiveCounts | MissingLeads) -> web.Response:
    if isinstance(outcome, MissingLeads):
        return lead_errors(400, MISSING, outcome.lead_ids)
    return json_response(
        Processed(
            SUCCESS,
            outcome.select_count,
            outcome.insert_count,
            outcome.update_count,
            outcome.delete_count,
        )
    )


_COMMON: Final = {
    401: Response("Missing, unknown or revoked key", Message),
    413: Response("The body exceeds LEDGER_MAX_BODY_BYTES", LeadErrors),
    500: Response(
        "Malformed JSON, a body that is not a JSON object, or an unexpected failure", LeadErrors
    ),
}


@routes.post("/vicidial/leads/archive")
@openapi.operation(
    summary="Archive leads by id: insert into the archive, re-sync, then safe-delete",
    description=(
        "Refused during the account's office hours. Up to 500 lead ids of this account's live"
        " leads. A lead is deleted from live only when its archive copy equals it field for"
        " field. See docs/vicidial.md for every message."
    ),
    tags=("vicidial",),
    security=SECURITY,
    body=ArchiveRequest,
    responses={
        200: Response("The batch was processed; the counts", Processed),
        400: Response("A flag or lead id is invalid; `lead_ids` lists the culprits", LeadErrors),
        403: Response("Called during office hours", Message),
        **_COMMON,
    },
)
@VICIDIAL.route
async def archive(request: web.Request, principal: Principal) -> web.Response:
    archive_request = parse_archive(await _window_checked_body(request, principal, "archive"))
    ctx = context(request, principal)
    return _answer(
        await vicidial.archive(request.app[POOL], ctx, principal.account_id, archive_request)
    )


@routes.post("/vicidial/leads/dearchive")
@openapi.operation(
    summary="Restore archived leads into live, then drop archive rows equal to live",
    description=(
        "Allowed only inside the account's office hours when they are configured. Up to 500"
        " lead ids of this account's archive. See docs/vicidial.md."
    ),
    tags=("vicidial",),
    security=SECURITY,
    body=DearchiveRequest,
    responses={
        200: Response("The batch was processed; the counts (update_count is 0)", Processed),
        400: Response("A flag or lead id is invalid; `lead_ids` lists the culprits", LeadErrors),
        403: Response("Called outside office hours", Message),
        **_COMMON,
    },
)
@VICIDIAL.route
async def dearchive(request: web.Request, principal: Principal) -> web.Response:
    dearchive_request = parse_dearchive(await _window_checked_body(request, principal, "dearchive"))
    ctx = context(request, principal)
    return _answer(
        await vicidial.dearchive(request.app[POOL], ctx, principal.account_id, dearchive_request)
    )
