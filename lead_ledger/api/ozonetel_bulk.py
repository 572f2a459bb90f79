"""Ozonetel CloudAgent: `POST /endpoint/dailer/data/bulk/upload`, a csv or xlsx file (seed 001).

The form is read with `request.multipart()`, one part at a time, fields in any order. A body
that is not multipart/form-data, or whose multipart breaks, never becomes a 500: the fields read
whole before the break still authenticate the caller, and the file counts as missing. Refusals
are HTTP 200 in the vendor's `{"status", "message"}` shape, the rate limit 429, as for
AddCampaignData; the checks and their order live in lead_ledger/service/ozonetel_bulk.py and
docs/ozonetel.md ("Bulk file upload").
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, assert_never

import msgspec
from aiohttp import BodyPartReader, web

from lead_ledger.api import openapi
from lead_ledger.api.edge import origin
from lead_ledger.api.keys import FILE_PARSER, POOL, SETTINGS
from lead_ledger.api.openapi import Response
from lead_ledger.api.ozonetel_wire import OZONETEL, Reply, rate_limited, reply
from lead_ledger.service import ozonetel_bulk
from lead_ledger.service.inputs import utf8_text
from lead_ledger.service.ozonetel_bulk import InProgress, Outcome, Refusal, Submitted
from lead_ledger.service.ozonetel_file import NOT_EXCEL, UploadRefusal

PATH: Final = "/endpoint/dailer/data/bulk/upload"
routes = web.RouteTableDef()

_CHUNK: Final = 256 * 1024
# The vendor's field names -> UploadForm's; any other part is skipped unread.
_FIELDS: Final = {
    "username": "username",
    "apiKey": "api_key",
    "campaignName": "campaign_name",
    "callBackUrl": "callback_url",
    "action": "action",
}
_FILE: Final = "file"


class UploadFields(msgspec.Struct, frozen=True, kw_only=True):
    """The multipart/form-data fields (documentation only: the handler streams the parts)."""

    username: Annotated[str, msgspec.Meta(description="The account's name (any case)")]
    apiKey: Annotated[  # noqa: N815 - the vendor's field names
        str, msgspec.Meta(description="A credential of dialect `ozonetel` of that account")
    ]
    file: Annotated[
        str,
        msgspec.Meta(
            description="The data: an xlsx workbook or a UTF-8 csv, told apart by content",
            extra_json_schema={"contentMediaType": "application/octet-stream"},
        ),
    ]
    campaignName: Annotated[  # noqa: N815
        str, msgspec.Meta(description="An outbound campaign of the account (case-sensitive)")
    ]
    callBackUrl: Annotated[  # noqa: N815
        str,
        msgspec.Meta(description="Receives the result as a JSON POST; missing or blank: none"),
    ] = ""
    action: Annotated[
        Literal["start", "stop"] | None,
        msgspec.Meta(description="start after the upload; stop at once (any case)"),
    ] = None


class _Reading(msgspec.Struct, kw_only=True):
    values: dict[str, bytes] = {}
    filename: str | None = None
    size: int = 0


async def _read_part(part: BodyPartReader, reading: _Reading, limit: int) -> bytes:
    data = bytearray()
    while not part.at_eof():
        chunk = await part.read_chunk(_CHUNK)
        reading.size += len(chunk)
        if reading.size > limit:
            # The edge answers it in the dialect's shape, as for any other route's body.
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=reading.size)
        data += chunk
    return bytes(data)


async def _read_parts(request: web.Request, reading: _Reading, limit: int) -> None:
    reader = await request.multipart()
    async for part in reader:
        # A nested multipart, an unknown or a repeated field is skipped (the reader drains
        # it when it moves on); the first of repeated fields wins.
        if not isinstance(part, BodyPartReader):
            continue
        name = part.name or ""
        if (name not in _FIELDS and name != _FILE) or name in reading.values:
            continue
        data = await _read_part(part, reading, limit)
        if name == _FILE:
            reading.filename = None if part.filename is None else utf8_text(part.filename)
        reading.values[name] = data  # only a part read to its end counts


async def _read_urlencoded(request: web.Request, reading: _Reading) -> None:
    posted = await request.post()
    for name in _FIELDS:
        value = posted.get(name)
        if isinstance(value, str):
            reading.values[name] = value.encode()


async def read_form(request: web.Request, limit: int) -> ozonetel_bulk.UploadForm:
    """The fields of the body; raises HTTPRequestEntityTooLarge past `limit` bytes.

    multipart/form-data is the vendor's form. An urlencoded form is read too (it cannot carry
    a file, but its credentials are checked first, as they would be beside a missing file);
    any other body has no fields.
    """
    reading = _Reading()
    broken = False
    try:
        if request.content_type == "application/x-www-form-urlencoded":
            await _read_urlencoded(request, reading)
        else:
            await _read_parts(request, reading, limit)
    except web.HTTPRequestEntityTooLarge:
        raise
    except Exception:  # noqa: BLE001 - not multipart, or broken: any parser error is bad input
        broken = True
    fields = {
        _FIELDS[name]: data.decode("utf-8", errors="replace")
        for name, data in reading.values.items()
        if name in _FIELDS
    }
    # A body that breaks off may have cut the file short: it counts as missing, never as data.
    file = None if broken else reading.values.get(_FILE)
    return ozonetel_bulk.UploadForm(**fields, file=file, filename=reading.filename)


# The vendor's message for each refusal, all as {"status": "error"} with HTTP 200.
REFUSALS: Final = {
    Refusal.AUTHENTICATION_FAILED: "Authentication failed",
    Refusal.FILE_MISSING: "File is mandatory",
    Refusal.NOT_EXCEL: NOT_EXCEL,
    Refusal.CAMPAIGN_NOT_FOUND: "Campaign not found",
    Refusal.CAMPAIGN_RUNNING: "Campaign is running",
}


def answer(outcome: Outcome) -> web.Response:
    """The vendor's answer to an outcome of `ozonetel_bulk.upload`."""
    match outcome:
        case Refusal.RATE_LIMITED:
            return rate_limited()
        case Refusal():
            return reply("error", REFUSALS[outcome])
        case UploadRefusal(message):
            return reply("error", message)
        case InProgress(campaign):
            # The vendor allows one upload per campaign at a time but documents no message.
            return reply("error", f"Upload is in progress for campaign {campaign}")
        case Submitted():
            return reply("success", "Data processing")
        case _:
            assert_never(outcome)


@routes.post(PATH)
@openapi.operation(
    summary="Ozonetel CloudAgent bulk upload: a csv or xlsx file of numbers into a campaign",
    description=(
        "multipart/form-data. The file is validated while it is uploaded (refusals are HTTP 200"
        " with the vendor's status/message); an accepted file is added in the background and the"
        " result POSTed to callBackUrl. See docs/ozonetel.md, 'Bulk file upload'."
    ),
    tags=("ozonetel",),
    body=UploadFields,
    body_content_type="multipart/form-data",
    responses={
        200: Response("Accepted (`Data processing`), or refused by a check", Reply),
        413: Response("The body is over LEDGER_MAX_BODY_BYTES (`Data limit exceeded`)", Reply),
        429: Response("Over the account's ozonetel_bulk_per_minute", Reply),
        500: Response("An unexpected failure", Reply),
    },
)
@OZONETEL.route
async def bulk_upload(request: web.Request, _caller: None) -> web.Response:
    form = await read_form(request, request.app[SETTINGS].max_body_bytes)
    outcome = await ozonetel_bulk.upload(
        request.app[POOL], request.app[FILE_PARSER], form, origin(request)
    )
    return answer(outcome)
