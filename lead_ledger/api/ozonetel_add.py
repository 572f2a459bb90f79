"""Ozonetel CloudAgent: `POST /ca_apis/AddCampaignData`, one number into a campaign (seed 002).

The vendor answers in its own `{"status", "message"}` shape with HTTP 200 even for refusals;
only the rate limit (429) and a body that is not a JSON object (400) use other statuses. The
checks and their order live in lead_ledger/service/ozonetel.py; docs/ozonetel.md lists them.
"""

from __future__ import annotations

from typing import Final

import msgspec
from aiohttp import web

from lead_ledger.api import openapi
from lead_ledger.api.keys import CLOCK, LEAD_BATCHER, POOL
from lead_ledger.api.middleware import REQUEST_ID
from lead_ledger.api.openapi import Response
from lead_ledger.service import ozonetel
from lead_ledger.service.ozonetel import AddCampaignData, Reply

PATH: Final = "/ca_apis/AddCampaignData"
routes = web.RouteTableDef()

_DECODER: Final = msgspec.json.Decoder(AddCampaignData)
_ENCODER: Final = msgspec.json.Encoder()
# What a Spring controller answers when the @RequestBody cannot be read: 400, before any check
# of the header or the fields runs; here in the vendor's own shape rather than Spring's.
MALFORMED: Final = Reply(status="error", message="Malformed JSON request body")

openapi.security_scheme(
    "ozonetelApiKey",
    {
        "type": "apiKey",
        "in": "header",
        "name": "apiKey",
        "description": "A credential of dialect `ozonetel`; `userName` must be its account.",
    },
)


def _reply(reply: Reply, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(reply), status=status, content_type="application/json")


@routes.post(PATH)
@openapi.operation(
    summary="Ozonetel CloudAgent AddCampaignData: add one number to an outbound campaign",
    description=(
        "Checks run in the vendor's order and refusals are HTTP 200 with the vendor's"
        " status/message (the authentication answers add `data: null`). See docs/ozonetel.md."
    ),
    tags=("ozonetel",),
    security="ozonetelApiKey",
    body=AddCampaignData,
    responses={
        200: Response("Added, refused by a check, or a duplicate (`Number Already Exist`)", Reply),
        400: Response("The body is not a JSON object", Reply),
        429: Response("Over the account's ozonetel_add_per_minute", Reply),
    },
)
async def add_campaign_data(request: web.Request) -> web.Response:
    try:
        body = _DECODER.decode(await request.read())
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _reply(MALFORMED, 400)
    outcome = await ozonetel.add_campaign_data(
        request.app[POOL],
        request.app[LEAD_BATCHER],
        api_key=request.headers.get("apiKey", "").strip(),
        body=body,
        now=request.app[CLOCK](),
        request_id=request[REQUEST_ID],
        client_address=request.remote,
    )
    return _reply(outcome.reply, outcome.http_status)
