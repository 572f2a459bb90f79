"""Ozonetel CloudAgent: `DELETE /ca_apis/deleteCampaignData`, the leads of one number deleted
from a campaign (VENDOR-APIS.md section G; docs/ozonetel.md).

Every answer is HTTP 200 in the vendor's `{"status", "message"}` shape (the authentication ones
with `data: null`), but the rate limit's 429. The checks and their order live in
service/ozonetel_delete.py.
"""

from __future__ import annotations

from typing import Final

import msgspec
from aiohttp import web

from lead_ledger.api import openapi
from lead_ledger.api.edge import json_response, origin
from lead_ledger.api.keys import POOL
from lead_ledger.api.openapi import Response
from lead_ledger.api.ozonetel_add import SECURITY
from lead_ledger.api.ozonetel_wire import OZONETEL, Reply, api_key_header, rate_limited, reply
from lead_ledger.service import ozonetel_delete
from lead_ledger.service.inputs import decode_json
from lead_ledger.service.ozonetel_delete import DeleteCampaignData, Deleted, Refusal

PATH: Final = "/ca_apis/deleteCampaignData"
routes = web.RouteTableDef()

_DECODER: Final = msgspec.json.Decoder(DeleteCampaignData)


def _auth(message: str) -> Reply:
    return Reply(status="false", message=message, data=None)


INVALID_JSON: Final = _auth("Invalid Json Pass Valid Json")
REFUSALS: Final[dict[Refusal, Reply]] = {
    Refusal.NO_API_KEY: _auth("Api Key Should Not be Null or Empty."),
    Refusal.INVALID_USER: _auth("Invalid User Details"),
    Refusal.NO_USERNAME: _auth("Username Should Not be Null or Empty."),
    Refusal.NO_CAMPAIGN: Reply(status="Error", message="Campaign should not be null are empty"),
    Refusal.UNKNOWN_CAMPAIGN: Reply(status="Error", message="Passed campaign are invalid"),
    Refusal.NO_PHONE: Reply(status="Error", message="PhoneNumber should not be null are empty"),
    Refusal.SEVERAL_PHONES: INVALID_JSON,
    Refusal.NOT_FOUND: Reply(status="Error", message="No Record Found"),
}


@routes.delete(PATH)
@openapi.operation(
    summary="Ozonetel CloudAgent deleteCampaignData: delete one number's leads from a campaign",
    description=(
        "Checks run in the vendor's order; every answer is HTTP 200 with the vendor's"
        " status/message but the rate limit (429). A body that is not a JSON object, or a"
        " phoneNumber that is a list, is `Invalid Json Pass Valid Json`. See docs/ozonetel.md."
    ),
    tags=("ozonetel",),
    security=SECURITY,
    body=DeleteCampaignData,
    responses={
        200: Response(
            "Deleted, or refused by a check (`No Record Found` when none matched)", Reply
        ),
        413: Response("The body exceeds LEDGER_MAX_BODY_BYTES", Reply),
        429: Response("Over the account's ozonetel_delete_per_minute", Reply),
        500: Response("An unexpected failure", Reply),
    },
)
@OZONETEL.route
async def delete_campaign_data(request: web.Request, _caller: None) -> web.Response:
    try:
        # Like Spring reading the @RequestBody: an unreadable body is answered before any check.
        body = decode_json(await request.read(), _DECODER.decode)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return json_response(INVALID_JSON)
    async with request.app[POOL].acquire() as conn:
        outcome = await ozonetel_delete.delete_campaign_data(
            conn,
            api_key=api_key_header(request),
            body=body,
            origin=origin(request),
        )
    if outcome is Refusal.RATE_LIMITED:
        return rate_limited()
    if isinstance(outcome, Deleted):
        return reply("Success", "Deleted Successfully")
    return json_response(REFUSALS[outcome])
