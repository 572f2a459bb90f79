"""Ozonetel CloudAgent: `POST /ca_apis/AddCampaignData`, one number into a campaign (seed 002).

The vendor answers in its own `{"status", "message"}` shape with HTTP 200 even for refusals;
only the rate limit (429) and a body that is not a JSON object (400) use other statuses. The
checks and their order live in lead_ledger/service/ozonetel.py; docs/ozonetel.md lists them.
"""

from __future__ import annotations

from typing import Final, assert_never

import msgspec
from aiohttp import web

from lead_ledger.api import openapi
from lead_ledger.api.edge import Refused, json_response, one_lead_body, origin
from lead_ledger.api.keys import CLOCK, OZONETEL_ADDS
from lead_ledger.api.openapi import Response
from lead_ledger.api.ozonetel_wire import (
    OZONETEL,
    RATE_LIMITED,
    Reply,
    api_key_header,
    rate_limited,
    reply,
)
from lead_ledger.service.inputs import decode_json
from lead_ledger.service.ozonetel import (
    ROW_MESSAGES,
    AddCampaignData,
    Added,
    AlreadyExists,
    AlreadyStarted,
    Outcome,
    Refusal,
    Started,
    Stopped,
)

PATH: Final = "/ca_apis/AddCampaignData"
routes = web.RouteTableDef()

_DECODER: Final = msgspec.json.Decoder(AddCampaignData)
# What a Spring controller answers when the @RequestBody cannot be read: 400, before any check
# of the header or the fields runs; here in the vendor's own shape rather than Spring's.
MALFORMED: Final = Reply(status="error", message="Malformed JSON request body")


def _auth(message: str) -> Reply:
    return Reply(status="false", message=message, data=None)


def _row(status: str, refusal: Refusal) -> Reply:
    return Reply(status=status, message=ROW_MESSAGES[refusal])


# The vendor's answer to each refusal: HTTP 200 (429 for the rate limit) with its own pair.
REFUSALS: Final[dict[Refusal, Reply]] = {
    Refusal.NO_API_KEY: _auth("Api Key Should Not be Null or Empty."),
    Refusal.INVALID_USER: _auth("Invalid User Details"),
    Refusal.NO_USERNAME: _auth("Username Should Not be Null or Empty."),
    Refusal.API_NOT_ALLOWED: _auth("Invalid action."),
    Refusal.NO_CAMPAIGN: Reply(status="Error", message="Please provide campaign details"),
    Refusal.UNKNOWN_CAMPAIGN: Reply(
        status="FAIL", message="No User Found or Campaign Name is Invalid"
    ),
    Refusal.NOT_OUTBOUND: Reply(status="Fail", message="The selected campaign is not outbound"),
    Refusal.BAD_PHONE: _row("error", Refusal.BAD_PHONE),
    Refusal.BAD_PRIORITY: _row("Error", Refusal.BAD_PRIORITY),
    Refusal.BAD_DATE: _row("Error", Refusal.BAD_DATE),
    Refusal.PAST_DATE: _row("Error", Refusal.PAST_DATE),
    Refusal.NO_AGENT: _row("FAIL", Refusal.NO_AGENT),
    Refusal.UNKNOWN_AGENT: _row("FAIL", Refusal.UNKNOWN_AGENT),
    Refusal.BAD_SKILL: _row("FAIL", Refusal.BAD_SKILL),
    Refusal.RATE_LIMITED: RATE_LIMITED,
    Refusal.DND_NUMBER: _row("FAIL", Refusal.DND_NUMBER),
}


def answer(outcome: Outcome) -> web.Response:  # noqa: PLR0911 - one answer per outcome
    """The vendor's answer to an outcome of `AddCampaignDataGroups.add`."""
    match outcome:
        case Refusal.RATE_LIMITED:
            return rate_limited()
        case Refusal():
            return json_response(REFUSALS[outcome])
        case Added(campaign):
            return reply(
                "Success",
                f"Please pass the valid Campaign action SuccessFully Updated {campaign} Campaign"
                " Data",
            )
        case AlreadyExists():
            return reply("SUCCESS", "Number Already Exist")
        case Started(dial_mode):
            return reply("SUCCESS", f"SuccessFully Updated, {dial_mode} was started")
        case AlreadyStarted(campaign):
            return reply("Success", f"Campaign {campaign} Is Already Started")
        case Stopped(dial_mode):
            return reply("Success", f"SuccessFully Updated {dial_mode} Campaign Stoped")
        case _:
            assert_never(outcome)


SECURITY: Final = openapi.api_key_header(
    "ozonetelApiKey",
    "apiKey",
    "A credential of dialect `ozonetel`; `userName` must be its account.",
)


@routes.post(PATH)
@openapi.operation(
    summary="Ozonetel CloudAgent AddCampaignData: add one number to an outbound campaign",
    description=(
        "Checks run in the vendor's order and refusals are HTTP 200 with the vendor's"
        " status/message (the authentication answers add `data: null`). See docs/ozonetel.md."
    ),
    tags=("ozonetel",),
    security=SECURITY,
    body=AddCampaignData,
    responses={
        200: Response("Added, refused by a check, or a duplicate (`Number Already Exist`)", Reply),
        400: Response("The body is not a JSON object", Reply),
        413: Response("The body exceeds 1 MiB (LEDGER_MAX_BODY_BYTES when lower)", Reply),
        429: Response("Over the account's ozonetel_add_per_minute", Reply),
        500: Response("An unexpected failure", Reply),
    },
)
@OZONETEL.route
@one_lead_body
async def add_campaign_data(request: web.Request, _caller: None) -> web.Response:
    raw = await request.read()
    try:
        body = decode_json(raw, _DECODER.decode)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise Refused(json_response(MALFORMED, 400)) from None
    outcome = await request.app[OZONETEL_ADDS].add(
        api_key=api_key_header(request),
        body=body,
        now=request.app[CLOCK](),
        origin=origin(request),
    )
    return answer(outcome)
