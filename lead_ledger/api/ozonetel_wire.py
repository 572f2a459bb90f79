"""Ozonetel CloudAgent on the wire: the `{"status", "message"}` reply both routes answer with,
and the dialect's answers to what any route can meet."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import msgspec
from aiohttp import web
from msgspec import UNSET, UnsetType

from lead_ledger.api.edge import Dialect, json_response, no_authentication
from lead_ledger.service import rate_limits


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """The vendor's answer; `data: null` appears on the authentication answers only."""

    status: str
    message: str
    data: UnsetType | None = UNSET


def reply(status: str, message: str, http_status: int = 200) -> web.Response:
    return json_response(Reply(status=status, message=message), http_status)


RATE_LIMITED: Final = Reply(status="error", message="Request limit exhausted")


def rate_limited() -> web.Response:
    """429 with the vendor's text, and `Retry-After`: the seconds until the next window, as the
    limits count fixed one-minute windows."""
    wait = rate_limits.seconds_to_next_window(datetime.now(UTC))
    return json_response(RATE_LIMITED, 429, headers={"Retry-After": str(wait)})


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


def api_key_header(request: web.Request) -> str | None:
    """The `apiKey` header as CloudAgent reads it: None when it is missing ("Api Key Should Not
    be Null or Empty."), else its value trimmed; an empty one is a key that matches no user
    ("Invalid User Details", seed 002's "Empty api_key value")."""
    value = request.headers.get("apiKey")
    return None if value is None else value.strip()
