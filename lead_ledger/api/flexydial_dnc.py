"""Flexydial's DNC API: `POST /api/upload-dnc/` and `POST /api/remove-dnc/` (VENDOR-APIS A and
F), token auth as the other Flexydial routes, `{"detail": ...}` answers (docs/flexydial.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from lead_ledger.api import openapi
from lead_ledger.api.auth import Principal
from lead_ledger.api.edge import context, json_response
from lead_ledger.api.flexydial import FLEXYDIAL, SECURITY, UNAUTHORIZED, Detail
from lead_ledger.api.keys import POOL
from lead_ledger.api.openapi import Response
from lead_ledger.ledger.connection import Connection
from lead_ledger.service import flexydial_dnc
from lead_ledger.service.writer import Context

routes = web.RouteTableDef()

Action = Callable[[Connection, Context, int, bytes], Awaitable[str]]
# The body as the vendor documents it (the checks, and their order, are the service's).
UploadItems: Final = list[dict[str, str]]


@routes.post("/api/upload-dnc/")
@openapi.operation(
    summary="Flexydial: add numbers to the do-not-call list, all or none",
    description=(
        'A JSON array of {"numeric", "campaign" (names, comma-separated), "global_dnc"'
        ' ("true"/"false"), "status" ("Active"/"Inactive"), "dnc_end_date" (YYYY-MM-DD)}. The'
        " first item at fault refuses the array with the vendor's text; nothing is stored."
    ),
    tags=("flexydial",),
    security=SECURITY,
    body=UploadItems,
    responses={
        200: Response('`{"detail": "Data processed successfully"}`', Detail),
        400: Response("The array is refused (the vendor's text in `detail`)", Detail),
        401: UNAUTHORIZED,
    },
)
@FLEXYDIAL.route
async def upload_dnc(request: web.Request, principal: Principal) -> web.Response:
    return await _answer(request, principal, flexydial_dnc.upload_dnc)


@routes.post("/api/remove-dnc/")
@openapi.operation(
    summary="Flexydial: remove numbers from the do-not-call list, all or none",
    description=(
        'A JSON array of {"numeric"} (optionally "campaign": only that campaign\'s entries).'
        " A number with no entry refuses the array; nothing is removed."
    ),
    tags=("flexydial",),
    security=SECURITY,
    body=UploadItems,
    responses={
        200: Response('`{"detail": "DNC numbers removed successfully"}`', Detail),
        400: Response("The array is refused (the vendor's text in `detail`)", Detail),
        401: UNAUTHORIZED,
    },
)
@FLEXYDIAL.route
async def remove_dnc(request: web.Request, principal: Principal) -> web.Response:
    return await _answer(request, principal, flexydial_dnc.remove_dnc)


async def _answer(request: web.Request, principal: Principal, action: Action) -> web.Response:
    """Both routes: the body to the service, its text back as `detail` (400 when refused)."""
    body = await request.read()
    async with request.app[POOL].acquire() as conn:
        try:
            detail = await action(conn, context(request, principal), principal.account_id, body)
        except flexydial_dnc.RefusedError as refused:
            return json_response(Detail(refused.detail), 400)
    return json_response(Detail(detail))
