"""Ozonetel CloudAgent on the wire: the `{"status", "message"}` reply both routes answer with,
and the dialect's answers to what any route can meet."""

from __future__ import annotations

from typing import Final

import msgspec
from aiohttp import web
from msgspec import UNSET, UnsetType

from lead_ledger.api.edge import Dialect, json_response, no_authentication


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """The vendor's answer; `data: null` appears on the authentication answers only."""

    status: str
    message: str
    data: UnsetType | None = UNSET


def reply(status: str, message: str, http_status: int = 200) -> web.Response:
    return json_response(Reply(status=status, message=message), http_status)


RATE_LIMITED: Final = Reply(status="error", message="Request limit exhausted")
TOO_LARGE: Final = Reply(status="error", message="Data limit exceeded")
# Not a vendor text (its Spring service answers a failure in Spring's own error body); said in
# the vendor's shape so that a client's parser of these routes reads it too.
UNEXPECTED: Final = Reply(status="error", message="Internal Server Error")

# The vendor checks the caller inside its own ordered checks (the key among the request's other
# fields), so the services authenticate and the edge does not.
OZONETEL: Final = Dialect(
    name="ozonetel",
    authenticate=no_authentication,
    too_large=lambda: json_response(TOO_LARGE, 413),
    unexpected=lambda: json_response(UNEXPECTED, 500),
)
