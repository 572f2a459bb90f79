"""Ozonetel CloudAgent bulk JSON V4: `POST .../AddCampaignBulkDataV4/addBulkData/format/json`.

Up to 500 rows as `bulkData: {"map": [...], "data": [[...], ...]}`, answered at once with a
transactionId and added by a job whose result goes to callBackUrl (VENDOR-APIS.md section G;
docs/ozonetel.md, "Bulk JSON V4"). Every refusal is HTTP 200 `{"status": "error", "message"}`
but the rate limit's 429. The vendor's service is PHP: a body that is not a JSON object has no
fields (so it is refused for its missing apiKey), and a form-encoded body is read too, with
bulkData as JSON text. The checks and their order live in service/ozonetel_v4.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from aiohttp import web
from msgspec import UNSET, UnsetType

from lead_ledger.api import openapi
from lead_ledger.api.edge import json_response, origin, readable_form
from lead_ledger.api.keys import CLOCK, POOL, SETTINGS
from lead_ledger.api.openapi import Response
from lead_ledger.api.ozonetel_wire import OZONETEL, Reply, rate_limited
from lead_ledger.service import ozonetel_v4
from lead_ledger.service.inputs import decode_json
from lead_ledger.service.ozonetel_v4 import MESSAGES, Queued, Refusal

PATH: Final = "/cloudAgentRestAPI/index.php/AddCampaignBulkDataV4/addBulkData/format/json"
routes = web.RouteTableDef()


class BulkData(msgspec.Struct, frozen=True):
    """The rows: `map` names the columns, each `data` row holds their values in that order."""

    map: Annotated[
        list[str],
        msgspec.Meta(
            description="PhoneNumber (required), Name, Priority (0-99), ExpiryDate"
            " (yyyy-MM-dd[ HH:mm:ss]), AgentId, skill, any other name: a lead field; names are"
            " case-insensitive, `_` and spaces ignored"
        ),
    ]
    data: Annotated[
        list[list[str | int | float | bool | None]],
        msgspec.Meta(description="At most 500 rows of at most 2,000 characters each"),
    ]


class AddBulkData(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON body (documentation: the handler reads any body and checks it in order)."""

    apiKey: Annotated[  # noqa: N815 - the vendor's field names
        str,
        msgspec.Meta(description="A credential of dialect `ozonetel` (or the `apiKey` header)"),
    ]
    userName: Annotated[str, msgspec.Meta(description="The account's name (any case)")]  # noqa: N815
    campaignName: Annotated[  # noqa: N815
        str, msgspec.Meta(description="An outbound campaign of the account (case-sensitive)")
    ]
    bulkData: BulkData  # noqa: N815
    action: Annotated[
        Literal["start"] | None,
        msgspec.Meta(description="start: start the campaign when the rows are added"),
    ] = None
    checkDuplicate: Annotated[  # noqa: N815
        Literal["true", "false"] | bool | None,
        msgspec.Meta(
            description="true: refuse a number live in the campaign, and repeats in the payload"
        ),
    ] = None
    isDelete: Annotated[  # noqa: N815
        Literal["true", "false"] | bool | None,
        msgspec.Meta(
            description="true (wins over checkDuplicate): refuse a number any lead of the"
            " campaign has, archived ones included, and repeats in the payload"
        ),
    ] = None
    callBackUrl: Annotated[  # noqa: N815
        str | None, msgspec.Meta(description="Receives the result as a JSON POST")
    ] = None


class V4Reply(msgspec.Struct, frozen=True, kw_only=True):
    """The vendor's answer, its fields in its order: with a transactionId when queued."""

    transactionId: str | UnsetType = UNSET  # noqa: N815
    status: str
    message: str


async def _fields(request: web.Request) -> dict[str, Any]:
    """The body's fields: a JSON object, or a form; anything else has none."""
    if request.content_type == "application/x-www-form-urlencoded":
        posted = await readable_form(request)
        if posted is None:
            return {}
        return {name: value for name, value in posted.items() if isinstance(value, str)}
    try:
        body: object = decode_json(await request.read())
    except msgspec.DecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def links_base(request: web.Request) -> str:
    """Where clients reach this service: LEDGER_PUBLIC_URL, else this request's own origin."""
    configured = request.app[SETTINGS].public_url
    if configured:
        return configured.rstrip("/")
    return f"{request.scheme}://{request.host}"


@routes.post(PATH)
@openapi.operation(
    summary="Ozonetel CloudAgent bulk V4: up to 500 rows into a campaign, added by a job",
    description=(
        "Answers at once with a transactionId (`GET /v1/jobs?transaction_id=` finds the job);"
        " the rows are checked one by one as AddCampaignData checks a number, the good ones"
        " added, and the result POSTed to callBackUrl with failedFilePath linking the refused"
        " rows as csv. Refusals are HTTP 200 with the vendor's status/message, the rate limit"
        " (`rate_limits.ozonetel_bulk_v4_per_minute`) 429. See docs/ozonetel.md, 'Bulk JSON V4'."
    ),
    tags=("ozonetel",),
    body=AddBulkData,
    responses={
        200: Response("Queued (`queued successfully`), or refused by a check", V4Reply),
        413: Response("The body is over LEDGER_MAX_BODY_BYTES (`Data limit exceeded`)", Reply),
        429: Response("Over the account's ozonetel_bulk_v4_per_minute", Reply),
        500: Response("An unexpected failure", Reply),
    },
)
@OZONETEL.route
async def add_bulk_data(request: web.Request, _caller: None) -> web.Response:
    bulk = ozonetel_v4.read_request(await _fields(request), request.headers.get("apiKey"))
    async with request.app[POOL].acquire() as conn:
        outcome = await ozonetel_v4.add_bulk_data(
            conn,
            bulk,
            now=request.app[CLOCK](),
            origin=origin(request),
            links_base=links_base(request),
        )
    if outcome is Refusal.RATE_LIMITED:
        return rate_limited()
    if isinstance(outcome, Queued):
        queued = V4Reply(
            transactionId=outcome.transaction_id, status="success", message="queued successfully"
        )
        return json_response(queued)
    return json_response(V4Reply(status="error", message=MESSAGES[outcome]))
