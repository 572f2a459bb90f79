"""Vicidial's own non-agent API: `GET|POST /vicidial/non_agent_api.php` (docs/vicidial.md).

Every answer is HTTP 200 with plain text lines, as `non_agent_api.php` prints them: `version`
before anything else, then the login (`user`, `pass`: an account user), then the function,
whose first check is the `source`. Parameters come from the query or a form body, the query's first,
and are cleaned as Vicidial cleans them before any check (service/vicidial_params.py).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Final
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from lead_ledger import __version__
from lead_ledger.api import openapi
from lead_ledger.api.edge import Dialect, no_authentication, one_lead_body, origin, readable_form
from lead_ledger.api.keys import (
    CLOCK,
    LOGIN_CHECKS,
    POOL,
    SETTINGS,
    VICIDIAL_ADDS,
    VICIDIAL_LOGINS,
)
from lead_ledger.api.openapi import Response
from lead_ledger.api.vicidial_calls import Function, on_connection, text
from lead_ledger.ledger.envelope import Actor
from lead_ledger.service import (
    login_throttle,
    vicidial_add_lead,
    vicidial_dnc,
    vicidial_reads,
    vicidial_update_lead,
)
from lead_ledger.service.vicidial_login import DIALECT, ApiUser, log_in
from lead_ledger.service.vicidial_params import Params, join, line, piped
from lead_ledger.service.writer import Context

PATH: Final = "/vicidial/non_agent_api.php"
MIN_SOURCE: Final = 2
NO_FUNCTION: Final = "ERROR: NO FUNCTION SPECIFIED"
UNEXPECTED: Final = "ERROR: An error has occurred."
TOO_LARGE: Final = "ERROR: request body too large"

routes = web.RouteTableDef()


NON_AGENT: Final = Dialect(
    name=DIALECT,
    authenticate=no_authentication,  # user and pass are checked in Vicidial's order, below
    too_large=lambda: text([TOO_LARGE]),
    unexpected=lambda: text([UNEXPECTED]),
)


async def _params(request: web.Request) -> Params:
    """The query's values over the form's: Vicidial reads `$_GET` before `$_POST`. Bytes that
    are not UTF-8 read as U+FFFD, as PHP would keep them as some text: a form is never a
    failure."""
    values: dict[str, str] = {}
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        body = (await request.read()).decode("utf-8", errors="replace")
        values.update(parse_qsl(body, keep_blank_values=True, errors="replace"))
    elif request.method == "POST" and request.content_type == "multipart/form-data":
        form = await readable_form(request)
        if form is not None:
            values.update((k, v) for k, v in form.items() if isinstance(v, str))
    values.update(request.query.items())
    return Params(values)


def version() -> list[str]:
    """Vicidial's fields in its order; the clock is UTC, so no daylight saving and offset 0."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    fields = (
        f"VERSION: {__version__}",
        f"BUILD: {__version__}",
        f"DATE: {stamp}",
        f"EPOCH: {int(time.time())}",
        "DST: 0",
        "TZ: 0.00",
        "TZNOW: 0.00",
    )
    return ["|".join(fields) + "|"]


async def add_lead(request: web.Request, ctx: Context, user: ApiUser, params: Params) -> list[str]:
    add = vicidial_add_lead.request_of(params, user.username, request.app[CLOCK]())
    # Calls arriving together are decided as a group, in one transaction.
    return await request.app[VICIDIAL_ADDS].submit(user.account_id, (ctx, add))


FUNCTIONS: Final[dict[str, Function]] = {
    "add_lead": add_lead,
    "update_lead": on_connection(vicidial_update_lead.update_lead),
    "batch_update_lead": on_connection(vicidial_update_lead.batch_update_lead),
    "lead_search": on_connection(vicidial_reads.lead_search),
    "lead_all_info": on_connection(vicidial_reads.lead_all_info),
    "lead_field_info": on_connection(vicidial_reads.lead_field_info),
    "add_dnc_phone": on_connection(vicidial_dnc.add_dnc_phone),
    "delete_dnc_phone": on_connection(vicidial_dnc.delete_dnc_phone),
}


class Query(msgspec.Struct, frozen=True, kw_only=True):
    """The parameters every call takes; each function adds its own (docs/vicidial.md)."""

    function: str
    user: str = ""
    source: str = ""


@routes.get(PATH)
@routes.post(PATH)
@openapi.operation(
    summary="Vicidial non_agent_api.php: add, update, search and read leads; DNC numbers",
    description=(
        "Parameters in the query or a form body (`function`, `user`, `pass`, `source`, and the"
        " function's own); answers are always HTTP 200, plain text lines as Vicidial prints"
        " them (`SUCCESS: ...`, `ERROR: ...`, `NOTICE: ...`). `user`/`pass` are an account"
        " user's. See docs/vicidial.md for every function, its parameters and answers."
    ),
    tags=("vicidial",),
    query=Query,
    responses={200: Response("The function's lines", str, "text/plain")},
)
@NON_AGENT.route
@one_lead_body
async def non_agent_api(request: web.Request, _caller: None) -> web.Response:
    params = await _params(request)
    function = params.get("function")
    if function == "version":
        return text(version())
    username = params.get("user")
    settings = request.app[SETTINGS]
    limits = login_throttle.Limits(
        per_username=settings.login_failures_per_username,
        per_address=settings.login_failures_per_address,
        window_seconds=settings.login_throttle_window_seconds,
    )
    user = await log_in(
        request.app[POOL],
        username,
        params.get("pass"),
        address=request.remote,
        limits=limits,
        verified=request.app[VICIDIAL_LOGINS],
        shared=request.app[LOGIN_CHECKS],
    )
    if isinstance(user, login_throttle.Throttled):
        # Vicidial's words for its own lock; the wait is the throttle's window.
        reason = "Too many login attempts, try again in 15 minutes"
        return text([piped("ERROR", reason, join(username, "LOCK", ""))])
    if user is None:
        # Vicidial prints the password back here; this never does.
        reason = "Login incorrect, please try again"
        return text([piped("ERROR", reason, join(username, "", "BAD", ""))])
    handler = FUNCTIONS.get(function)
    if handler is None:
        return text([NO_FUNCTION])
    # Each function checks the source first, once the login is (as Vicidial's every one does).
    source = params.get("source")
    if len(source) < MIN_SOURCE:
        return text(
            [
                line("ERROR", "Invalid Source", source),
                piped("ERROR", "Invalid Source", source + "|"),
            ]
        )
    actor = Actor(dialect=DIALECT, account_id=user.account_id, username=user.username)
    ctx = origin(request).context(actor)
    return text(await handler(request, ctx, user, params))
