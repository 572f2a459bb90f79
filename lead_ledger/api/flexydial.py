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
from msgspec import UNSET

from lead_ledger.api import openapi
from lead_ledger.api.auth import Principal, find_principal
from lead_ledger.api.edge import (
    Dialect,
    Refused,
    context,
    json_response,
    one_lead_body,
    origin,
    readable_form,
)
from lead_ledger.api.keys import LOGIN_CHECKS, POOL, SETTINGS
from lead_ledger.api.openapi import Response
from lead_ledger.service import flexydial, login_throttle
from lead_ledger.service.flexydial import Status
from lead_ledger.service.flexydial_payload import OOPS, parse_structure
from lead_ledger.service.inputs import decode_json

routes = web.RouteTableDef()

SECURITY: Final = openapi.api_key_header(
    "flexydialToken",
    "Authorization",
    "`Token <key>`: a key from /api/generate-token/ or a `flexydial` credential issued by the"
    " admin API.",
)

NOT_PROVIDED: Final = "Authentication credentials were not provided."
NO_CREDENTIALS: Final = "Invalid token header. No credentials provided."
HAS_SPACES: Final = "Invalid token header. Token string should not contain spaces."
INVALID_TOKEN: Final = "Invalid token."  # noqa: S105 - a message, not a secret
UNABLE_TO_LOG_IN: Final = "Unable to log in with provided credentials."
FIELD_REQUIRED: Final = "This field is required."
FIELD_BLANK: Final = "This field may not be blank."
FIELD_NULL: Final = "This field may not be null."
NOT_A_STRING: Final = "Not a valid string."
_FORMS: Final = ("application/x-www-form-urlencoded", "multipart/form-data")


class Detail(msgspec.Struct, frozen=True):
    detail: str


class Token(msgspec.Struct, frozen=True):
    token: str


class Errors(msgspec.Struct, frozen=True):
    """Flexydial's request error: {"errors": "<text>"}."""

    errors: str


class Accepted(msgspec.Struct, frozen=True):
    success: str
    job_id: str


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


def _unauthorized(detail: str) -> Refused:
    return Refused(json_response(Detail(detail), 401, headers={"WWW-Authenticate": "Token"}))


async def _authenticate(request: web.Request) -> Principal:
    """DRF's TokenAuthentication: the principal, or the 401 answer raised."""
    parts = request.headers.get("Authorization", "").split()
    if not parts or parts[0].lower() != "token":
        raise _unauthorized(NOT_PROVIDED)
    if len(parts) == 1:
        raise _unauthorized(NO_CREDENTIALS)
    if len(parts) > 2:  # the scheme and the key, nothing more
        raise _unauthorized(HAS_SPACES)
    principal = await find_principal(request, parts[1], "flexydial")
    if principal is None:
        raise _unauthorized(INVALID_TOKEN)
    return principal


async def _public(_request: web.Request) -> None:
    """generate-token is how a caller gets a token: it authenticates by its body."""


def _oops(status: int) -> web.Response:
    return json_response(Errors(OOPS), status)


# Flexydial's catch-all text answers a body too large and an unexpected failure alike.
FLEXYDIAL: Final = Dialect(
    name="flexydial",
    authenticate=_authenticate,
    too_large=lambda: _oops(413),
    unexpected=lambda: _oops(500),
)
LOGIN: Final = Dialect(
    name="flexydial",
    authenticate=_public,
    # DRF's login answer to anything it cannot read, a body over the limit included.
    too_large=lambda: json_response({"non_field_errors": [UNABLE_TO_LOG_IN]}, 400),
    unexpected=lambda: _oops(500),
)


UNAUTHORIZED: Final = Response(
    "No `Authorization: Token <key>` (`Authentication credentials were not provided.`), a"
    " malformed header, or an unknown or revoked key (`Invalid token.`)",
    Detail,
)


# DRF field errors ({"username": ["This field is required."]}) or {"non_field_errors": [...]}.
LoginErrors = dict[str, list[str]]


def login_fields(data: object) -> tuple[str, str] | LoginErrors:
    """The username and password of a login body, checked as DRF's AuthTokenSerializer does:
    both required, not null, strings (numbers are taken as text); the username is stripped and
    must not be blank, the password is taken as given."""
    if not isinstance(data, dict):
        return {"non_field_errors": [UNABLE_TO_LOG_IN]}
    errors: LoginErrors = {}
    values: dict[str, str] = {}
    for name, trim in (("username", True), ("password", False)):
        value = data.get(name, UNSET)
        problem = None
        if value is UNSET:
            problem = FIELD_REQUIRED
        elif value is None:
            problem = FIELD_NULL
        elif isinstance(value, bool) or not isinstance(value, str | int | float):
            problem = NOT_A_STRING
        else:
            text = str(value).strip() if trim else str(value)
            if not text:
                problem = FIELD_BLANK
            values[name] = text
        if problem is not None:
            errors[name] = [problem]
    if errors:
        return errors
    return values["username"], values["password"]


async def _login_data(request: web.Request) -> object:
    if request.content_type in _FORMS:
        form = await readable_form(request)
        if form is None:
            return None
        return dict(form.items())  # a repeated field: its last value, as Django's QueryDict
    try:
        data: object = decode_json(await request.read())
    except msgspec.DecodeError:
        return None
    return data


@routes.post("/api/generate-token/")
@openapi.operation(
    summary="Flexydial login: the user's token",
    description=(
        "A user has one `flexydial` token, as Django REST framework's ObtainAuthToken gives:"
        " the first login issues it and every later one answers it again, until it is revoked"
        " through the admin API (the next login then issues a new one). Missing or blank"
        " fields get DRF's field errors."
    ),
    tags=("flexydial",),
    body=Credentials,
    responses={
        200: Response("The token", Token),
        400: Response(
            "Wrong credentials ({`non_field_errors`: [...]}) or field errors",
            dict[str, list[str]],
        ),
        429: Response(
            "Too many failed logins for this username or from this address of late; the"
            " `Retry-After` header and `detail` say when to try again (docs/operations.md)",
            Detail,
        ),
    },
)
@LOGIN.route
@one_lead_body
async def generate_token(request: web.Request, _caller: None) -> web.Response:
    fields = login_fields(await _login_data(request))
    if isinstance(fields, dict):
        return json_response(fields, 400)
    settings = request.app[SETTINGS]
    limits = login_throttle.Limits(
        per_username=settings.login_failures_per_username,
        per_address=settings.login_failures_per_address,
        window_seconds=settings.login_throttle_window_seconds,
    )
    token = await flexydial.generate_token(
        request.app[POOL], *fields, origin(request), limits, request.app[LOGIN_CHECKS]
    )
    if isinstance(token, login_throttle.Throttled):
        return throttled(token.wait_seconds)
    if token is None:
        return json_response({"non_field_errors": [UNABLE_TO_LOG_IN]}, 400)
    return json_response(Token(token))


def throttled(wait_seconds: int) -> web.Response:
    """DRF's answer to a throttled request: 429, its `detail` text and `Retry-After`."""
    unit = "second" if wait_seconds == 1 else "seconds"
    detail = f"Request was throttled. Expected available in {wait_seconds} {unit}."
    return json_response(Detail(detail), 429, headers={"Retry-After": str(wait_seconds)})


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
        401: UNAUTHORIZED,
        413: Response("The body exceeds LEDGER_MAX_BODY_BYTES", Errors),
        500: Response("An unexpected failure (the vendor's catch-all text)", Errors),
    },
)
@FLEXYDIAL.route
async def bulk_upload(request: web.Request, principal: Principal) -> web.Response:
    bulk = parse_structure(await request.read())
    if isinstance(bulk, str):
        return json_response(Errors(bulk), 400)
    ctx = context(request, principal)
    outcome = await flexydial.submit_bulk(request.app[POOL], ctx, principal.account_id, bulk)
    if isinstance(outcome, flexydial.Refused):
        return json_response(Errors(outcome.message), 400)
    reference = f"Reference/Phonebook Name:{outcome.upload_ref}"
    return json_response(Accepted(success=reference, job_id=str(outcome.job_id)), 201)


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
        401: UNAUTHORIZED,
        404: Response("No such Flexydial job in this account (`Job not found.`)", Errors),
    },
)
@FLEXYDIAL.route
async def upload_status(request: web.Request, principal: Principal) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        status = await flexydial.job_status(
            conn, principal.account_id, request.match_info["job_id"]
        )
    if status is None:
        return json_response(Errors(flexydial.JOB_NOT_FOUND), 404)
    return json_response(status)
