"""TForge's Vicidial lead archive API: `POST /vicidial/leads/archive` and `.../dearchive`.

`Authorization: Key=<vicidial credential>`; answers in the vendor's shapes and messages (seed
003, docs/vicidial.md). Handlers authenticate, read the raw body, call one service function and
encode; the vendor-exact validation lives in lead_ledger.service.vicidial.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final

import asyncpg
import msgspec
from aiohttp import web

from lead_ledger.api import openapi
from lead_ledger.api.auth import find_principal
from lead_ledger.api.keys import CLOCK, POOL
from lead_ledger.api.middleware import REQUEST_ID
from lead_ledger.api.openapi import Response
from lead_ledger.ledger.envelope import Actor
from lead_ledger.service import vicidial
from lead_ledger.service.vicidial import LeadErrors, Message, Processed, Refusal
from lead_ledger.service.writer import Context

routes = web.RouteTableDef()

SECURITY: Final = "vicidialKey"
openapi.security_scheme(
    SECURITY,
    {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Key=<key>` with a credential of dialect `vicidial`.",
    },
)

# vicidial.archive and vicidial.dearchive: (pool, ctx, account_id, body, now) -> outcome.
Service = Callable[[asyncpg.Pool, Context, int, bytes, datetime], Awaitable[Processed | Refusal]]


class ArchiveBody(msgspec.Struct, frozen=True):
    """What the archive route reads (every flag is required and must be a JSON boolean)."""

    insert_leads: bool
    update_leads: bool
    delete_leads: bool
    lead_ids: list[int]


class DearchiveBody(msgspec.Struct, frozen=True):
    insert_leads: bool
    delete_leads: bool
    lead_ids: list[int]


def _key(request: web.Request) -> str:
    """The key of `Authorization: Key=<key>` (the scheme's case is not significant)."""
    header = request.headers.get("Authorization", "").strip()
    scheme, equals, key = header.partition("=")
    return key.strip() if equals and scheme.strip().lower() == "key" else ""


def _json(status: int, body: object) -> web.Response:
    return web.Response(
        status=status, body=msgspec.json.encode(body), content_type="application/json"
    )


async def _handle(request: web.Request, service: Service) -> web.Response:
    principal = await find_principal(request, _key(request), "vicidial")
    if principal is None:
        return _json(401, Message(vicidial.UNAUTHORIZED))
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _json(413, LeadErrors("request body too large"))
    ctx = Context(
        actor=Actor(
            dialect="vicidial",
            account_id=principal.account_id,
            credential_id=principal.credential_id,
        ),
        request_id=request[REQUEST_ID],
        client_address=request.remote,
    )
    outcome = await service(
        request.app[POOL], ctx, principal.account_id, body, request.app[CLOCK]()
    )
    if isinstance(outcome, Refusal):
        return _json(outcome.status, outcome.body)
    return _json(200, outcome)


_COMMON: Final = {
    401: Response("Missing, unknown or revoked key", Message),
    413: Response("The body exceeds LEDGER_MAX_BODY_BYTES", LeadErrors),
    500: Response("Malformed JSON, or a body that is not a JSON object", LeadErrors),
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
    body=ArchiveBody,
    responses={
        200: Response("The batch was processed; the counts", Processed),
        400: Response("A flag or lead id is invalid; `lead_ids` lists the culprits", LeadErrors),
        403: Response("Called during office hours", Message),
        **_COMMON,
    },
)
async def archive(request: web.Request) -> web.Response:
    return await _handle(request, vicidial.archive)


@routes.post("/vicidial/leads/dearchive")
@openapi.operation(
    summary="Restore archived leads into live, then drop archive rows equal to live",
    description=(
        "Allowed only inside the account's office hours when they are configured. Up to 500"
        " lead ids of this account's archive. See docs/vicidial.md."
    ),
    tags=("vicidial",),
    security=SECURITY,
    body=DearchiveBody,
    responses={
        200: Response("The batch was processed; the counts (update_count is 0)", Processed),
        400: Response("A flag or lead id is invalid; `lead_ids` lists the culprits", LeadErrors),
        403: Response("Called outside office hours", Message),
        **_COMMON,
    },
)
async def dearchive(request: web.Request) -> web.Response:
    return await _handle(request, vicidial.dearchive)
