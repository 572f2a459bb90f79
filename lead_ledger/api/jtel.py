"""The jtel ACD dialler contacts API under `/rest/v1.0/{ClientsID}` (seed 004, VENDOR-APIS D).

`Authorization: Bearer <jtel key>`; ClientsID must be the key's account. Every error, from a
bad token to an unknown route under the base, is jtel's `{"status": <code>, "error": "..."}`.
The import body is validated field by field (api/jtel_wire.py) so each 400 names the field.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web
from multidict import MultiMapping

from lead_ledger.api import openapi
from lead_ledger.api.auth import Principal, bearer_token, find_principal
from lead_ledger.api.edge import Dialect, context, json_response
from lead_ledger.api.jtel_wire import (
    AUTH_401,
    CampaignRecords,
    CampaignsPage,
    CampaignsQuery,
    ContactRecords,
    ContactsPage,
    DeleteQuery,
    ImportContact,
    ImportQuery,
    ListQuery,
    Status,
    check_query,
    error,
    errors,
    flag,
    invalid,
    missing,
    number,
    parse_contact,
    positive_id,
    refuse,
)
from lead_ledger.api.keys import POOL
from lead_ledger.api.openapi import Response
from lead_ledger.ledger.lead import LeadError
from lead_ledger.service import jtel
from lead_ledger.service.errors import NotFound
from lead_ledger.service.transactions import write_transaction

routes = web.RouteTableDef()

BASE: Final = "/rest/v1.0/{ClientsID}"
CONTACTS: Final = f"{BASE}/dialler/contacts"
CAMPAIGNS: Final = f"{BASE}/dialler/campaigns"

SECURITY: Final = openapi.bearer("jtelKey", "A credential of dialect `jtel`.")


async def _authenticate(request: web.Request) -> Principal:
    """The token, then the ClientsID: it must be the token's account."""
    principal = await find_principal(request, bearer_token(request) or "", "jtel")
    if principal is None:
        raise refuse(401, "Unauthorized: invalid or missing Bearer token")
    if request.match_info["ClientsID"] != str(principal.account_id):
        raise refuse(401, "Unauthorized: ClientsID does not match the token")
    return principal


def _translate(refusal: Exception) -> web.Response | None:
    if isinstance(refusal, NotFound):
        return error(404, str(refusal))
    if isinstance(refusal, LeadError):
        return error(400, f"Invalid contact: {refusal}")
    return None


JTEL: Final = Dialect(
    name="jtel",
    authenticate=_authenticate,
    too_large=lambda: error(413, "Request body too large"),
    # jtel documents 500 as its answer to failures: its shape, the cause only in the log.
    unexpected=lambda: error(500, "Internal server error"),
    translate=_translate,
)
_DOC: Final[dict[str, Any]] = {
    "tags": ("jtel",),
    "security": SECURITY,
    "path": {"ClientsID": int},
}


# --- routes ---------------------------------------------------------------------------------------


@routes.post(f"{CONTACTS}/import")
@openapi.operation(
    summary="Import one dialler contact (insert, or overwrite the one with its UserData)",
    description=(
        "With overwriteDuplicates=true (default false) a contact of the campaign with the same"
        " non-empty UserData is updated and keeps its ID; otherwise a new contact is created."
        " A number on the do-not-call list is flagged `bPhoneNumberNInvalid: true` in its slot;"
        " a contact whose every number is on it is refused (409)."
    ),
    query=ImportQuery,
    body=ImportContact,
    responses={
        200: Response("The imported or overwritten contact", ContactRecords),
        **errors(
            bad="A required field is missing, or a field is too long or of the wrong type",
            auth=AUTH_401,
            missing="Dialler campaign not found",
            conflict="Every phone number of the contact is on the do-not-call list",
            large="Request body too large",
        ),
    },
    **_DOC,
)
@JTEL.route
async def import_contact(request: web.Request, principal: Principal) -> web.Response:
    check_query(request)
    overwrite = flag(request, "overwriteDuplicates", default=False)
    contact = parse_contact(await request.read())
    async with request.app[POOL].acquire() as conn, write_transaction(conn):
        imported = await jtel.import_contact(
            conn,
            context(request, principal),
            account_id=principal.account_id,
            contact=contact,
            overwrite=overwrite,
        )
    if imported.blocked:
        raise refuse(409, jtel.ALL_BLOCKED)
    if imported.record is None:
        raise refuse(400, f"Invalid contact: {imported.rejected}")
    return json_response({"records": [imported.record], "count": 1, "status": 200})


@routes.get(CONTACTS)
@openapi.operation(
    summary="A dialler campaign's contacts, ordered by Name (then ID)",
    description="limitStart/limitPageSize page the list (-1: everything); count is the total.",
    query=ListQuery,
    responses={
        200: Response("The contacts", ContactsPage),
        **errors(
            bad="diallerCampaignsID missing, or a parameter is invalid or unsupported",
            auth=AUTH_401,
            missing="Dialler campaign not found",
        ),
    },
    **_DOC,
)
@JTEL.route
async def list_contacts(request: web.Request, principal: Principal) -> web.Response:
    query = check_query(request)
    user_data = query.get("userData")
    if "diallerCampaignsID" not in query and user_data is None:
        raise missing("diallerCampaignsID")
    start, size = _page(request, query)
    campaign_id = None
    if "diallerCampaignsID" in query:
        campaign_id = _campaign_id(query["diallerCampaignsID"])
    async with request.app[POOL].acquire() as conn:
        if user_data is not None:
            page = await jtel.contacts_by_user_data(
                conn,
                principal.account_id,
                user_data,
                campaign_id,
                start=start,
                size=None if size < 0 else size,
            )
        else:
            page = await jtel.list_contacts(
                conn,
                principal.account_id,
                campaign_id or 0,
                start=start,
                size=None if size < 0 else size,
            )
    return _listed(start, size, [jtel.contact_record(row) for row in page.rows], page.total)


def _page(request: web.Request, query: MultiMapping[str]) -> tuple[int, int]:
    """limitStart and limitPageSize, after the options jtel lists but lead-ledger does not do."""
    start = number(request, "limitStart", 0, minimum=0)
    size = number(request, "limitPageSize", -1, minimum=-1)
    if query.get("filter", ""):
        raise refuse(400, "Parameter not supported: filter")
    if query.get("orderBy", "Name") != "Name":
        raise invalid("orderBy", "only Name is supported")
    if not flag(request, "ascending", default=True):
        raise invalid("ascending", "only true is supported")
    return start, size


def _campaign_id(text: str) -> int:
    campaign_id = positive_id(text)
    if campaign_id is None:
        if not (text.isascii() and text.isdigit()):  # '²' is a digit to str.isdigit()
            raise invalid("diallerCampaignsID", "an integer is required")
        raise jtel.campaign_not_found()
    return campaign_id


def _listed(start: int, size: int, records: list[Any], total: int) -> web.Response:
    """jtel's list envelope."""
    return json_response(
        {
            "filter": "",
            "limitStart": start,
            "limitPageSize": size,
            "records": records,
            "count": total,
            "orderBy": "Name",
            "ascending": True,
            "status": 200,
        }
    )


@routes.get(CAMPAIGNS)
@openapi.operation(
    summary="The account's dialler campaigns, ordered by Name",
    description="limitStart/limitPageSize page the list (-1: everything); count is the total.",
    query=CampaignsQuery,
    responses={
        200: Response("The campaigns", CampaignsPage),
        **errors(bad="A parameter is invalid or unsupported", auth=AUTH_401),
    },
    **_DOC,
)
@JTEL.route
async def list_campaigns(request: web.Request, principal: Principal) -> web.Response:
    start, size = _page(request, check_query(request))
    async with request.app[POOL].acquire() as conn:
        records = await jtel.list_campaigns(conn, principal.account_id)
    shown = records[start:] if size < 0 else records[start : start + size]
    return _listed(start, size, shown, len(records))


@routes.get(f"{CAMPAIGNS}/{{ID}}")
@openapi.operation(
    summary="One dialler campaign by ID",
    responses={
        200: Response("The campaign", CampaignRecords),
        **errors(auth=AUTH_401, missing="Dialler campaign not found"),
    },
    **(_DOC | {"path": {"ClientsID": int, "ID": int}}),
)
@JTEL.route
async def get_campaign(request: web.Request, principal: Principal) -> web.Response:
    campaign_id = positive_id(request.match_info["ID"])
    found = []
    if campaign_id is not None:
        async with request.app[POOL].acquire() as conn:
            records = await jtel.list_campaigns(conn, principal.account_id)
        found = [r for r in records if r["ID"] == campaign_id]
    if not found:
        raise jtel.campaign_not_found()
    return json_response({"records": found, "count": 1, "status": 200})


@routes.get(f"{CONTACTS}/{{ID}}")
@openapi.operation(
    summary="One dialler contact by ID",
    responses={
        200: Response("The contact", ContactRecords),
        **errors(auth=AUTH_401, missing="Dialler contact not found"),
    },
    **(_DOC | {"path": {"ClientsID": int, "ID": int}}),
)
@JTEL.route
async def get_contact(request: web.Request, principal: Principal) -> web.Response:
    lead_id = positive_id(request.match_info["ID"])
    record = None
    if lead_id is not None:
        async with request.app[POOL].acquire() as conn:
            record = await jtel.get_contact(conn, principal.account_id, lead_id)
    if record is None:
        raise NotFound("Dialler contact not found")
    return json_response({"records": [record], "count": 1, "status": 200})


@routes.delete(f"{CONTACTS}/contact/{{ID}}")
@openapi.operation(
    summary="Delete a dialler contact by ID",
    responses={
        200: Response("Deleted", Status),
        **errors(auth=AUTH_401, missing="Dialler contact not found"),
    },
    **(_DOC | {"path": {"ClientsID": int, "ID": int}}),
)
@JTEL.route
async def delete_contact(request: web.Request, principal: Principal) -> web.Response:
    lead_id = positive_id(request.match_info["ID"])
    deleted = False
    if lead_id is not None:
        async with request.app[POOL].acquire() as conn, write_transaction(conn):
            deleted = await jtel.delete_contact(
                conn, context(request, principal), account_id=principal.account_id, lead_id=lead_id
            )
    if not deleted:
        raise NotFound("Dialler contact not found")
    return json_response({"status": 200})


@routes.delete(f"{CONTACTS}/contact")
@openapi.operation(
    summary="Delete the first dialler contact (lowest ID) with this UserData",
    query=DeleteQuery,
    responses={
        200: Response("Deleted", Status),
        **errors(
            bad="userData missing", auth=AUTH_401, missing="No dialler contact has this UserData"
        ),
    },
    **_DOC,
)
@JTEL.route
async def delete_contact_by_user_data(request: web.Request, principal: Principal) -> web.Response:
    user_data = check_query(request).get("userData", "")
    if not user_data:
        raise missing("userData")
    # Not in one transaction: the service tries each candidate in a transaction of its own.
    async with request.app[POOL].acquire() as conn:
        deleted = await jtel.delete_contact_by_user_data(
            conn, context(request, principal), account_id=principal.account_id, user_data=user_data
        )
    if deleted is None:
        raise NotFound("Dialler contact not found")
    return json_response({"status": 200})


async def _unknown(_request: web.Request, _principal: Principal) -> web.Response:
    raise refuse(404, "Resource not found")


# Registered last, so it only catches what no route above matched (or a method they lack).
_UNKNOWN_DOC: Final = openapi.Operation(
    summary="Any other path under the jtel base: 404 in jtel's error shape",
    responses=errors(auth=AUTH_401, missing="Resource not found"),
    tags=("jtel",),
    security=SECURITY,
    path={"ClientsID": int},
)
for _method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
    _handler = JTEL.route(_unknown)
    _handler.__name__ = f"unknown_{_method.lower()}"
    openapi.describe(_handler, _UNKNOWN_DOC)
    # [\s\S], not '.': a tail with a newline (%0A) is under the base too, not aiohttp's 404.
    routes.route(_method, f"{BASE}/{{tail:[\\s\\S]*}}")(_handler)
