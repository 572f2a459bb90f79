"""The jtel ACD dialler contacts API under `/rest/v1.0/{ClientsID}` (seed 004, VENDOR-APIS D).

`Authorization: Bearer <jtel key>`; ClientsID must be the key's account. Every error, from a
bad token to an unknown route under the base, is jtel's `{"status": <code>, "error": "..."}`.
The import body is validated field by field from the raw JSON so each 400 names the field.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Final, assert_never

import msgspec
import structlog
from aiohttp import web

from lead_ledger.api import openapi
from lead_ledger.api.auth import Principal, bearer_token, find_principal
from lead_ledger.api.keys import POOL
from lead_ledger.api.middleware import REQUEST_ID
from lead_ledger.api.openapi import Response
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import ExtraValue
from lead_ledger.ledger.lead import LeadError
from lead_ledger.service import jtel
from lead_ledger.service.errors import NotFound
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()

BASE: Final = "/rest/v1.0/{ClientsID}"
CONTACTS: Final = f"{BASE}/dialler/contacts"
_MAX_ID: Final = 2**63 - 1  # bigint: larger ids cannot exist
DATETIME_REQUIRED: Final = "a datetime like 2020-01-01T00:00:00 is required"
JtelHandler = Callable[[web.Request, Principal], Awaitable[web.Response]]

openapi.security_scheme(
    "jtelKey",
    {"type": "http", "scheme": "bearer", "description": "A credential of dialect `jtel`."},
)


class JtelError(Exception):
    """A refusal in jtel's shape: the status and the reason."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def _answer(body: object, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type="application/json"
    )


def _error(status: int, error: str) -> web.Response:
    response = _answer({"status": status, "error": error}, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="jtel"'
    return response


def _jtel(handler: JtelHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Authenticate (token, then ClientsID) and answer every failure in jtel's shape."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.Response:
        try:
            return await handler(request, await _principal(request))
        except JtelError as refused:
            return _error(refused.status, refused.error)
        except NotFound as missing:
            return _error(404, str(missing))
        except LeadError as error:
            return _error(400, f"Invalid contact: {error}")
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "Request body too large")
        except Exception:
            # jtel documents 500 as its answer to failures: keep its shape, log the cause.
            log.exception("jtel_error", path=request.path)
            return _error(500, "Internal server error")

    return wrapper


async def _principal(request: web.Request) -> Principal:
    principal = await find_principal(request, bearer_token(request) or "", "jtel")
    if principal is None:
        raise JtelError(401, "Unauthorized: invalid or missing Bearer token")
    if request.match_info["ClientsID"] != str(principal.account_id):
        raise JtelError(401, "Unauthorized: ClientsID does not match the token")
    return principal


def _context(request: web.Request, principal: Principal) -> Context:
    return Context(
        actor=Actor(
            dialect="jtel",
            account_id=principal.account_id,
            credential_id=principal.credential_id,
        ),
        request_id=request[REQUEST_ID],
        client_address=request.remote,
    )


# --- input ----------------------------------------------------------------------------------------


def _missing(what: str) -> JtelError:
    return JtelError(400, f"Required parameter missing: {what}")


def _invalid(name: str, why: str) -> JtelError:
    return JtelError(400, f"Invalid value for {name}: {why}")


def _id(text: str | None) -> int | None:
    """A positive bigint written in decimal, or None."""
    if text is None or not text.isdigit() or not 0 < int(text) <= _MAX_ID:
        return None
    return int(text)


def _flag(request: web.Request, name: str, *, default: bool) -> bool:
    text = request.query.get(name)
    if text is None:
        return default
    if text.lower() not in ("true", "false"):
        raise _invalid(name, "must be true or false")
    return text.lower() == "true"


def _value(spec: jtel.FieldSpec, value: object) -> ExtraValue:
    """One field's value checked against its kind and length; None for null."""
    if value is None:
        return None
    match spec.kind:
        case "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise _invalid(spec.name, "an integer is required")
            return value
        case "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _invalid(spec.name, "a number is required")
            return value
        case "datetime":
            try:
                return datetime.fromisoformat(str(value)).isoformat()
            except ValueError:
                raise _invalid(
                    spec.name, "a datetime like 2020-01-01T00:00:00 is required"
                ) from None
        case "text" | "phone":
            return _text(spec, value)
        case _:
            assert_never(spec.kind)


def _text(spec: jtel.FieldSpec, value: object) -> str:
    # Jackson binds a JSON integer to a String field, so do we.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _invalid(spec.name, "a string is required")
    text = str(value)
    if spec.max_length is not None and len(text) > spec.max_length:
        raise JtelError(400, f"Field too long: {spec.name} (at most {spec.max_length} characters)")
    return text


def _present(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip() != ""


def parse_contact(body: bytes) -> jtel.ContactInput:
    """The import body, checked in order: JSON, each field, then the required ones.

    Fields jtel's records carry but the import does not take (ID, run-time fields) and unknown
    names are ignored, so a record read with GET can be imported again as it is.
    """
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise JtelError(400, "Invalid JSON in request body") from None
    if not isinstance(data, dict):
        raise JtelError(400, "Request body must be a JSON object (one dialler contact)")
    campaign_id = data.get("DiallerCampaignsID")
    if campaign_id is not None and (
        isinstance(campaign_id, bool) or not isinstance(campaign_id, int)
    ):
        raise _invalid("DiallerCampaignsID", "an integer is required")
    campaign_name = data.get("DiallerCampaignsName")
    if campaign_name is not None and not isinstance(campaign_name, str):
        raise _invalid("DiallerCampaignsName", "a string is required")
    values = {spec.name: _value(spec, data.get(spec.name)) for spec in jtel.IMPORT_FIELDS}
    if not _present(values["Name"]):
        raise _missing("Name")
    if campaign_id is None and not (campaign_name or "").strip():
        raise _missing("DiallerCampaignsID or DiallerCampaignsName")
    if not any(_present(values[name]) for name in jtel.PHONE_NAMES):
        raise _missing("PhoneNumber1..PhoneNumber6 (at least one)")
    if campaign_id is not None and not 0 < campaign_id <= _MAX_ID:
        raise jtel.campaign_not_found()  # no such id can exist
    return jtel.ContactInput(campaign_id=campaign_id, campaign_name=campaign_name, values=values)


# --- shapes for the OpenAPI document (records: service.jtel) ------------------------------------


class Status(msgspec.Struct, frozen=True):
    status: int


class Error(msgspec.Struct, frozen=True):
    status: int
    error: str


class ImportQuery(msgspec.Struct, frozen=True, kw_only=True):
    overwriteDuplicates: bool = False  # noqa: N815 - jtel's parameter name


class ListQuery(msgspec.Struct, frozen=True, kw_only=True):
    diallerCampaignsID: int  # noqa: N815
    limitStart: Annotated[int, msgspec.Meta(ge=0)] = 0  # noqa: N815
    limitPageSize: Annotated[int, msgspec.Meta(ge=-1)] = -1  # noqa: N815
    filter: str = ""
    orderBy: str = "Name"  # noqa: N815
    ascending: bool = True


class DeleteQuery(msgspec.Struct, frozen=True, kw_only=True):
    userData: str  # noqa: N815


def _errors(**rows: str) -> dict[int, Response]:
    codes = {"bad": 400, "auth": 401, "missing": 404, "large": 413}
    return {codes[key]: Response(text, Error) for key, text in rows.items()}


AUTH_401: Final = "Bad or missing Bearer token, or a ClientsID that is not the token's account"
_DOC: Final[dict[str, Any]] = {"tags": ("jtel",), "security": "jtelKey", "path": {"ClientsID": int}}


# --- routes ---------------------------------------------------------------------------------------


@routes.post(f"{CONTACTS}/import")
@openapi.operation(
    summary="Import one dialler contact (insert, or overwrite the one with its UserData)",
    description=(
        "With overwriteDuplicates=true (default false) a contact of the campaign with the same"
        " non-empty UserData is updated and keeps its ID; otherwise a new contact is created."
    ),
    query=ImportQuery,
    body=jtel.ImportContact,
    responses={
        200: Response("The imported or overwritten contact", jtel.ContactRecords),
        **_errors(
            bad="A required field is missing, or a field is too long or of the wrong type",
            auth=AUTH_401,
            missing="Dialler campaign not found",
            large="Request body too large",
        ),
    },
    **_DOC,
)
@_jtel
async def import_contact(request: web.Request, principal: Principal) -> web.Response:
    overwrite = _flag(request, "overwriteDuplicates", default=False)
    contact = parse_contact(await request.read())
    async with request.app[POOL].acquire() as conn, write_transaction(conn):
        imported = await jtel.import_contact(
            conn,
            _context(request, principal),
            account_id=principal.account_id,
            contact=contact,
            overwrite=overwrite,
        )
    if imported.record is None:
        raise JtelError(400, f"Invalid contact: {imported.rejected}")
    return _answer({"records": [imported.record], "count": 1, "status": 200})


@routes.get(CONTACTS)
@openapi.operation(
    summary="A dialler campaign's contacts, ordered by Name (then ID)",
    description="limitStart/limitPageSize page the list (-1: everything); count is the total.",
    query=ListQuery,
    responses={
        200: Response("The contacts", jtel.ContactsPage),
        **_errors(
            bad="diallerCampaignsID missing, or a parameter is invalid or unsupported",
            auth=AUTH_401,
            missing="Dialler campaign not found",
        ),
    },
    **_DOC,
)
@_jtel
async def list_contacts(request: web.Request, principal: Principal) -> web.Response:
    query = request.query
    if "diallerCampaignsID" not in query:
        raise _missing("diallerCampaignsID")
    start = _number(request, "limitStart", 0, minimum=0)
    size = _number(request, "limitPageSize", -1, minimum=-1)
    if query.get("filter", ""):
        raise JtelError(400, "Parameter not supported: filter")
    if query.get("orderBy", "Name") != "Name":
        raise _invalid("orderBy", "only Name is supported")
    if not _flag(request, "ascending", default=True):
        raise _invalid("ascending", "only true is supported")
    campaign_id = _id(query["diallerCampaignsID"])
    if campaign_id is None:
        if not query["diallerCampaignsID"].isdigit():
            raise _invalid("diallerCampaignsID", "an integer is required")
        raise jtel.campaign_not_found()
    async with request.app[POOL].acquire() as conn:
        page = await jtel.list_contacts(
            conn, principal.account_id, campaign_id, start=start, size=None if size < 0 else size
        )
    return _answer(
        {
            "filter": "",
            "limitStart": start,
            "limitPageSize": size,
            "records": [jtel.contact_record(row) for row in page.rows],
            "count": page.total,
            "orderBy": "Name",
            "ascending": True,
            "status": 200,
        }
    )


def _number(request: web.Request, name: str, default: int, *, minimum: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _invalid(name, "an integer is required") from None
    if not minimum <= value <= _MAX_ID:
        raise _invalid(name, f"must be at least {minimum}")
    return value


@routes.get(f"{CONTACTS}/{{ID}}")
@openapi.operation(
    summary="One dialler contact by ID",
    responses={
        200: Response("The contact", jtel.ContactRecords),
        **_errors(auth=AUTH_401, missing="Dialler contact not found"),
    },
    **(_DOC | {"path": {"ClientsID": int, "ID": int}}),
)
@_jtel
async def get_contact(request: web.Request, principal: Principal) -> web.Response:
    lead_id = _id(request.match_info["ID"])
    record = None
    if lead_id is not None:
        async with request.app[POOL].acquire() as conn:
            record = await jtel.get_contact(conn, principal.account_id, lead_id)
    if record is None:
        raise NotFound("Dialler contact not found")
    return _answer({"records": [record], "count": 1, "status": 200})


@routes.delete(f"{CONTACTS}/contact/{{ID}}")
@openapi.operation(
    summary="Delete a dialler contact by ID",
    responses={
        200: Response("Deleted", Status),
        **_errors(auth=AUTH_401, missing="Dialler contact not found"),
    },
    **(_DOC | {"path": {"ClientsID": int, "ID": int}}),
)
@_jtel
async def delete_contact(request: web.Request, principal: Principal) -> web.Response:
    lead_id = _id(request.match_info["ID"])
    deleted = False
    if lead_id is not None:
        async with request.app[POOL].acquire() as conn, write_transaction(conn):
            deleted = await jtel.delete_contact(
                conn, _context(request, principal), account_id=principal.account_id, lead_id=lead_id
            )
    if not deleted:
        raise NotFound("Dialler contact not found")
    return _answer({"status": 200})


@routes.delete(f"{CONTACTS}/contact")
@openapi.operation(
    summary="Delete the first dialler contact (lowest ID) with this UserData",
    query=DeleteQuery,
    responses={
        200: Response("Deleted", Status),
        **_errors(
            bad="userData missing", auth=AUTH_401, missing="No dialler contact has this UserData"
        ),
    },
    **_DOC,
)
@_jtel
async def delete_contact_by_user_data(request: web.Request, principal: Principal) -> web.Response:
    user_data = request.query.get("userData", "")
    if not user_data:
        raise _missing("userData")
    async with request.app[POOL].acquire() as conn, write_transaction(conn):
        deleted = await jtel.delete_contact_by_user_data(
            conn, _context(request, principal), account_id=principal.account_id, user_data=user_data
        )
    if deleted is None:
        raise NotFound("Dialler contact not found")
    return _answer({"status": 200})


async def _unknown(_request: web.Request, _principal: Principal) -> web.Response:
    raise JtelError(404, "Resource not found")


# Registered last, so it only catches what no route above matched (or a method they lack).
_UNKNOWN_DOC: Final = openapi.Operation(
    summary="Any other path under the jtel base: 404 in jtel's error shape",
    responses=_errors(auth=AUTH_401, missing="Resource not found"),
    tags=("jtel",),
    security="jtelKey",
    path={"ClientsID": int},
)
for _method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
    _handler = _jtel(_unknown)
    _handler.__name__ = f"unknown_{_method.lower()}"
    openapi.describe(_handler, _UNKNOWN_DOC)
    routes.route(_method, f"{BASE}/{{tail:.*}}")(_handler)
