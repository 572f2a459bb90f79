"""Flexydial: `POST /api/generate-token/`, `POST /api/bulkphonebookupload/v1/` and
`GET|POST /api/bulkphonebookupload/status/{job_id}/` (seed 000, VENDOR-APIS A).

Authentication is DRF's TokenAuthentication: `Authorization: Token <key>` with a credential of
dialect `flexydial` (from generate-token or the admin API); refusals are 401 with DRF's
`{"detail": ...}` and `WWW-Authenticate: Token`. Handlers decode, call one function of
lead_ledger.service.flexydial and encode; docs/flexydial.md lists every answer.
"""

from __future__ import annotations

from typing import Final

import msgspec
from aiohttp import web

from lead_ledger.api import openapi
from lead_ledger.api.auth import Principal, find_principal
from lead_ledger.api.keys import POOL
from lead_ledger.api.middleware import REQUEST_ID
from lead_ledger.api.openapi import Response
from lead_ledger.ledger.envelope import Actor
from lead_ledger.service import flexydial
from lead_ledger.service.flexydial import Accepted, Errors, Status, Token
from lead_ledger.service.flexydial_payload import OOPS
from lead_ledger.service.writer import Context

routes = web.RouteTableDef()

SECURITY: Final = "flexydialToken"
openapi.security_scheme(
    SECURITY,
    {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Token <key>`: a key from /api/generate-token/ or a `flexydial`"
        " credential issued by the admin API.",
    },
)

NOT_PROVIDED: Final = "Authentication credentials were not provided."
NO_CREDENTIALS: Final = "Invalid token header. No credentials provided."
HAS_SPACES: Final = "Invalid token header. Token string should not contain spaces."
INVALID_TOKEN: Final = "Invalid token."  # noqa: S105 - a message, not a secret
_FORMS: Final = ("application/x-www-form-urlencoded", "multipart/form-data")


class Detail(msgspec.Struct, frozen=True):
    detail: str


class Credentials(msgspec.Struct, frozen=True):
    """The login body (JSON, or a form with the same fields)."""

    username: str
    password: str


class BulkBody(msgspec.Struct, frozen=True, kw_only=True):
    """bulk_data as seed 000 and VENDOR-APIS A describe it (the checks are the service's)."""

    campaign: str
    bulk_data: list[dict[str, str | int | float | bool | list[str] | None]]
    action_type: str | None = None
    reference_field: str | None = None


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=msgspec.json.encode(body),
        content_type="application/json",
        headers=headers,
    )


def _unauthorized(detail: str) -> web.Response:
    return _json(401, Detail(detail), {"WWW-Authenticate": "Token"})


async def _authenticate(request: web.Request) -> Principal | web.Response:
    """DRF's TokenAuthentication: the principal, or the 401 answer."""
    parts = request.headers.get("Authorization", "").split()
    if not parts or parts[0].lower() != "token":
        return _unauthorized(NOT_PROVIDED)
    if len(parts) == 1:
        return _unauthorized(NO_CREDENTIALS)
    if len(parts) > 2:  # the scheme and the key, nothing more
        return _unauthorized(HAS_SPACES)
    principal = await find_principal(request, parts[1], "flexydial")
    return _unauthorized(INVALID_TOKEN) if principal is None else principal


_UNAUTHORIZED: Final = Response(
    "No `Authorization: Token <key>` (`Authentication credentials were not provided.`), a"
    " malformed header, or an unknown or revoked key (`Invalid token.`)",
    Detail,
)


async def _login_data(request: web.Request) -> object:
    if request.content_type in _FORMS:
        form = await request.post()
        return dict(form.items())  # a repeated field: the first value, as Django's QueryDict
    try:
        data: object = msgspec.json.decode(await request.read())
    except msgspec.DecodeError:
        return None
    return data


@routes.post("/api/generate-token/")
@openapi.operation(
    summary="Flexydial login: a new token for a user's account",
    description=(
        "Each successful login issues a new `flexydial` credential (tokens are stored as"
        " digests, so an earlier one cannot be shown again); it stays valid until revoked"
        " through the admin API. Missing or blank fields get DRF's field errors."
    ),
    tags=("flexydial",),
    body=Credentials,
    responses={
        200: Response("The token", Token),
        400: Response(
            "Wrong credentials ({`non_field_errors`: [...]}) or field errors",
            dict[str, list[str]],
        ),
    },
)
async def generate_token(request: web.Request) -> web.Response:
    try:
        fields = flexydial.login_fields(await _login_data(request))
    except web.HTTPRequestEntityTooLarge:
        fields = {"non_field_errors": [flexydial.UNABLE_TO_LOG_IN]}
    if isinstance(fields, dict):
        return _json(400, fields)
    async with request.app[POOL].acquire() as conn:
        token = await flexydial.generate_token(
            conn,
            *fields,
            request_id=request[REQUEST_ID],
            client_address=request.remote,
        )
    if token is None:
        return _json(400, {"non_field_errors": [flexydial.UNABLE_TO_LOG_IN]})
    return _json(200, token)


@routes.post("/api/bulkphonebookupload/v1/")
@openapi.operation(
    summary="Flexydial bulk upload: insert, update by a reference field, or reassign agents",
    description=(
        'Checked as a whole at once (errors are 400 `{"errors": ...}` with the vendor\'s'
        " text), then run as a job; its rows are checked one by one and the refused ones are"
        " reported by the status route. See docs/flexydial.md."
    ),
    tags=("flexydial",),
    security=SECURITY,
    body=BulkBody,
    responses={
        201: Response("Accepted: the upload's reference and the job id", Accepted),
        400: Response("The request is refused as a whole", Errors),
        401: _UNAUTHORIZED,
        413: Response("The body exceeds LEDGER_MAX_BODY_BYTES", Errors),
    },
)
async def bulk_upload(request: web.Request) -> web.Response:
    principal = await _authenticate(request)
    if isinstance(principal, web.Response):
        return principal
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _json(413, Errors(OOPS))
    ctx = Context(
        actor=Actor(
            dialect="flexydial",
            account_id=principal.account_id,
            credential_id=principal.credential_id,
        ),
        request_id=request[REQUEST_ID],
        client_address=request.remote,
    )
    outcome = await flexydial.submit_bulk(request.app[POOL], ctx, principal.account_id, body)
    return _json(400 if isinstance(outcome, Errors) else 201, outcome)


STATUS_PATH: Final = "/api/bulkphonebookupload/status/{job_id}/"


@routes.post(STATUS_PATH)
@routes.get(STATUS_PATH)
@openapi.operation(
    summary="Flexydial upload status",
    description=(
        "`Completed`; `Pending state. Please check with Administrator!` while the job is queued"
        " or running (and when it failed); `Invalid Data` with `improper_data`, each refused"
        " row as sent plus its `description`. Only this account's Flexydial jobs are found."
    ),
    tags=("flexydial",),
    security=SECURITY,
    responses={
        200: Response("The job's status", Status),
        401: _UNAUTHORIZED,
        404: Response("No such Flexydial job in this account (`Job not found.`)", Errors),
    },
)
async def upload_status(request: web.Request) -> web.Response:
    principal = await _authenticate(request)
    if isinstance(principal, web.Response):
        return principal
    async with request.app[POOL].acquire() as conn:
        status = await flexydial.job_status(
            conn, principal.account_id, request.match_info["job_id"]
        )
    if status is None:
        return _json(404, Errors(flexydial.JOB_NOT_FOUND))
    return _json(200, status)
