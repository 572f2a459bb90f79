"""RFC 9457 problem details, the error shape of the native and admin APIs."""

from __future__ import annotations

from typing import Final

import msgspec
from aiohttp import web

PROBLEM_JSON: Final = "application/problem+json"
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
    return web.Response(
        status=status,
        body=msgspec.json.encode(body),
        content_type=PROBLEM_JSON,
        headers=headers,
    )


def validation_problem(error: msgspec.ValidationError | msgspec.DecodeError) -> web.Response:
    """400 naming what is wrong, from msgspec's message (`... - at `$.field``)."""
    message = str(error)
    field = None
    if " - at `$." in message:
        field = message.rsplit(" - at `$.", 1)[1].rstrip("`")
    return problem(400, message, title="Invalid request body", field=field)
