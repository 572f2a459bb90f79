"""A request no route takes (404) or a route without its method (405), answered in the shape of
the API its path belongs to: problem+json under /v1 and elsewhere, the vendor's error body under
a vendor's prefix. aiohttp's own answer would be plain text, which no client of these APIs
parses. (jtel's base has catch-all routes of its own, behind its authentication: api/jtel.py.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from lead_ledger.api.edge import json_response
from lead_ledger.api.jtel_wire import error as jtel_error
from lead_ledger.api.ozonetel_wire import reply
from lead_ledger.api.problems import problem
from lead_ledger.api.vicidial_wire import lead_errors

# (status, method, path, allowed methods) -> the answer
Answer = Callable[[int, str, str, str], web.Response]


def _problem(status: int, method: str, path: str, allowed: str) -> web.Response:
    if status == 405:
        return problem(405, f"{method} is not allowed on {path}", headers={"Allow": allowed})
    return problem(404, f"no route {method} {path}")


def _drf(status: int, method: str, _path: str, allowed: str) -> web.Response:
    # Django REST framework's texts (exceptions.NotFound, exceptions.MethodNotAllowed).
    if status == 405:
        return json_response(
            {"detail": f'Method "{method}" not allowed.'}, 405, headers={"Allow": allowed}
        )
    return json_response({"detail": "Not found."}, 404)


def _ozonetel(status: int, _method: str, _path: str, allowed: str) -> web.Response:
    if status == 405:
        answer = reply("error", "Method Not Allowed", 405)
        answer.headers["Allow"] = allowed
        return answer
    return reply("error", "Not Found", 404)


def _jtel(_status: int, _method: str, _path: str, _allowed: str) -> web.Response:
    # A method no jtel route has (OPTIONS, a browser's preflight): 404 in jtel's shape, as
    # its catch-all routes answer every other unknown path and method (api/jtel.py).
    return jtel_error(404, "Resource not found")


def _vicidial(status: int, method: str, path: str, allowed: str) -> web.Response:
    # ASP.NET Web API's texts, in the vendor's error body.
    if status == 405:
        answer = lead_errors(
            405, f"The requested resource does not support http method '{method}'."
        )
        answer.headers["Allow"] = allowed
        return answer
    return lead_errors(404, f"No HTTP resource was found that matches the request URI '{path}'.")


_BY_PREFIX: Final[tuple[tuple[str, Answer], ...]] = (
    ("/api/", _drf),
    ("/ca_apis/", _ozonetel),
    ("/cloudAgentRestAPI/", _ozonetel),  # bulk V4 answers in the same pair
    ("/endpoint/", _ozonetel),
    ("/vicidial/", _vicidial),
    ("/rest/v1.0/", _jtel),
)


@web.middleware
async def unmatched_routes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The API's own 404 or 405 where no route (or no method of it) matches."""
    failure = request.match_info.http_exception
    if failure is None or failure.status not in (404, 405):
        return await handler(request)
    answer = next(
        (answer for prefix, answer in _BY_PREFIX if request.path.startswith(prefix)), _problem
    )
    allowed = failure.headers.get("Allow", "")
    return answer(failure.status, request.method, request.path, allowed)
