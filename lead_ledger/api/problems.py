"""RFC 9457 problem details, the error shape of the native and admin APIs."""

from __future__ import annotations

import re
from typing import Final

import msgspec
from aiohttp import web

from lead_ledger.api.edge import json_response
from lead_ledger.service.inputs import OUT_OF_RANGE, time_out_of_range

PROBLEM_JSON: Final = "application/problem+json"
BODY_TITLE: Final = "Invalid request body"
_TITLES: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
    **extra: object,
) -> web.Response:
    """A problem+json response. `extra` members (e.g. `field`, `errors`) are added as is."""
    body: dict[str, object] = {
        "type": type_,
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    body.update(extra)
    return json_response(body, status, headers=headers, content_type=PROBLEM_JSON)


def body_too_large() -> web.Response:
    return problem(413, "the body exceeds LEDGER_MAX_BODY_BYTES")


def bad_parameter(name: str, reason: str) -> web.Response:
    """400 for a path or query value that cannot be taken; `parameter` names it."""
    return problem(400, f"{name} {reason}", title="Invalid parameter", parameter=name)


def invalid_body(
    detail: str, *, field: str | msgspec.UnsetType | None = msgspec.UNSET
) -> web.Response:
    """400 for a request body that cannot be taken; `field` (null when given as None) names
    where, when given."""
    if isinstance(field, msgspec.UnsetType):
        return problem(400, detail, title=BODY_TITLE)
    return problem(400, detail, title=BODY_TITLE, field=field)


def internal_error() -> web.Response:
    """The answer to a failure that is ours; the request id is in the X-Request-ID header."""
    return problem(500, "internal error")


# msgspec names an unknown field in its message, not in the path (which is the object holding it;
# at the top level there is no path at all).
# Unknown and missing fields are named in the message, with the path of the object that holds
# (or lacks) them, not in the path itself.
_NAMED_FIELD: Final = re.compile(
    r"Object (?:contains unknown|missing required) field `(.*?)`(?: - at `\$([^`]*)`)?",
    re.DOTALL,
)


def error_field(message: str) -> str | None:
    """The field a msgspec error message names (`office_hours.days[0]`), or None.

    Wrong values name it in the path (`... - at `$.office_hours.days[0]``); unknown and missing
    fields name it in the message, with the path of the object holding or lacking it.
    """
    named = _NAMED_FIELD.fullmatch(message)
    if named:
        return _below_root(f"{named.group(2) or ''}.{named.group(1)}")
    if " - at `$" in message:
        return _below_root(message.rsplit(" - at `$", 1)[1].rstrip("`")) or None
    return None


def _below_root(path: str) -> str:
    """msgspec's path without its `$` where the body is an object (`office_hours.days[0]`);
    with it where the body is an array (`$[1].phone`, as docs/dnc.md shows it)."""
    return path.removeprefix(".") if path.startswith(".") or not path else f"${path}"


def time_problem(value: object, root: str = "") -> web.Response | None:
    """400 naming the first time in a decoded body (`root` "$" for an array) that is out of
    range, else None."""
    beyond = time_out_of_range(value, root)
    return None if beyond is None else invalid_body(f"{beyond} {OUT_OF_RANGE}", field=beyond)


def validation_problem(error: msgspec.ValidationError | msgspec.DecodeError) -> web.Response:
    """400 naming what is wrong in a `field` member (None when the body is no JSON at all)."""
    message = str(error)
    return invalid_body(message, field=error_field(message))
