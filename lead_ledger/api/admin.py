"""The admin API, `/v1/admin/...`: JSON in, one service call, JSON out; errors as problem+json.

Only `Authorization: Bearer $LEDGER_ADMIN_TOKEN` gets in; without a configured token the admin
API answers 401 to everyone. `{account}` in a path is the account's name or its numeric id.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import msgspec
from aiohttp import web

from lead_ledger.api.auth import is_admin
from lead_ledger.api.keys import POOL
from lead_ledger.api.middleware import REQUEST_ID
from lead_ledger.api.problems import problem, validation_problem
from lead_ledger.ledger.envelope import Actor
from lead_ledger.service import accounts
from lead_ledger.service.errors import Conflict, Invalid, NotFound
from lead_ledger.service.writer import Context

routes = web.RouteTableDef()

PREFIX: Final = "/v1/admin"
ACCOUNT: Final = f"{PREFIX}/accounts/{{account}}"
ADMIN: Final = Actor(dialect="admin")

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _BadBody(Exception):  # noqa: N818 - carries the ready 400 answer, not an error state
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _admin(handler: Handler) -> Handler:
    """Check the admin token, then map service refusals to problem+json (never a 500)."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        if not is_admin(request):
            return problem(
                401,
                "admin API: send Authorization: Bearer <LEDGER_ADMIN_TOKEN>",
                headers={"WWW-Authenticate": 'Bearer realm="lead-ledger admin"'},
            )
        try:
            return await handler(request)
        except _BadBody as bad:
            return bad.response
        except Invalid as error:
            return problem(400, error.message, title="Invalid request body", field=error.field)
        except NotFound as error:
            return problem(404, str(error))
        except Conflict as error:
            return problem(409, str(error))

    return wrapper


_UNKNOWN_FIELD: Final = re.compile(
    r"^Object contains unknown field `([^`]*)`(?: - at `\$\.?(.*)`)?$"
)


def _bad_body(error: msgspec.DecodeError) -> web.Response:
    # msgspec names an unknown field in the message but not in its path; name it in `field`.
    unknown = _UNKNOWN_FIELD.match(str(error))
    if isinstance(error, msgspec.ValidationError) and unknown:
        name, parent = unknown.groups()
        field = f"{parent}.{name}" if parent else name
        return problem(400, str(error), title="Invalid request body", field=field)
    return validation_problem(error)


async def _body(request: web.Request, kind: type[T]) -> T:
    try:
        decoded: T = msgspec.json.decode(await request.read(), type=kind)
    except msgspec.DecodeError as error:  # also ValidationError: malformed or mistyped
        raise _BadBody(_bad_body(error)) from error
    return decoded


def _context(request: web.Request) -> Context:
    return Context(actor=ADMIN, request_id=request.get(REQUEST_ID), client_address=request.remote)


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(value), status=status, content_type="application/json"
    )


def _account(request: web.Request) -> str:
    return request.match_info["account"]


@routes.post(f"{PREFIX}/accounts")
@_admin
async def create_account(request: web.Request) -> web.StreamResponse:
    new = await _body(request, accounts.NewAccount)
    async with request.app[POOL].acquire() as conn:
        return _json(await accounts.create_account(conn, _context(request), new), 201)


@routes.get(f"{PREFIX}/accounts")
@_admin
async def list_accounts(request: web.Request) -> web.StreamResponse:
    async with request.app[POOL].acquire() as conn:
        return _json({"accounts": await accounts.list_accounts(conn)})


@routes.get(ACCOUNT)
@_admin
async def show_account(request: web.Request) -> web.StreamResponse:
    async with request.app[POOL].acquire() as conn:
        return _json(await accounts.get_account(conn, _account(request)))


@routes.post(f"{ACCOUNT}/credentials")
@_admin
async def issue_credential(request: web.Request) -> web.StreamResponse:
    new = await _body(request, accounts.NewCredential)
    async with request.app[POOL].acquire() as conn:
        issued = await accounts.issue_credential(conn, _context(request), _account(request), new)
    return _json(issued, 201)


@routes.delete(f"{ACCOUNT}/credentials/{{credential_id}}")
@_admin
async def revoke_credential(request: web.Request) -> web.StreamResponse:
    credential_id = request.match_info["credential_id"]
    async with request.app[POOL].acquire() as conn:
        await accounts.revoke_credential(conn, _context(request), _account(request), credential_id)
    return web.Response(status=204)


@routes.post(f"{ACCOUNT}/users")
@_admin
async def create_user(request: web.Request) -> web.StreamResponse:
    new = await _body(request, accounts.NewUser)
    async with request.app[POOL].acquire() as conn:
        user = await accounts.create_user(conn, _context(request), _account(request), new)
    return _json(user, 201)


@routes.post(f"{ACCOUNT}/agents")
@_admin
async def add_agent(request: web.Request) -> web.StreamResponse:
    new = await _body(request, accounts.NewAgent)
    async with request.app[POOL].acquire() as conn:
        agent = await accounts.add_agent(conn, _context(request), _account(request), new)
    return _json(agent, 201)


@routes.post(f"{ACCOUNT}/skills")
@_admin
async def add_skill(request: web.Request) -> web.StreamResponse:
    new = await _body(request, accounts.NewSkill)
    async with request.app[POOL].acquire() as conn:
        skill = await accounts.add_skill(conn, _context(request), _account(request), new)
    return _json(skill, 201)


@routes.post(f"{ACCOUNT}/campaigns")
@_admin
async def create_campaign(request: web.Request) -> web.StreamResponse:
    new = await _body(request, accounts.NewCampaign)
    async with request.app[POOL].acquire() as conn:
        campaign = await accounts.create_campaign(conn, _context(request), _account(request), new)
    return _json(campaign, 201)


@routes.get(f"{ACCOUNT}/campaigns")
@_admin
async def list_campaigns(request: web.Request) -> web.StreamResponse:
    async with request.app[POOL].acquire() as conn:
        return _json({"campaigns": await accounts.list_campaigns(conn, _account(request))})


@routes.get(f"{ACCOUNT}/campaigns/{{campaign}}")
@_admin
async def show_campaign(request: web.Request) -> web.StreamResponse:
    name = request.match_info["campaign"]
    async with request.app[POOL].acquire() as conn:
        return _json(await accounts.get_campaign(conn, _account(request), name))


@routes.patch(f"{ACCOUNT}/campaigns/{{campaign}}")
@_admin
async def update_campaign(request: web.Request) -> web.StreamResponse:
    changes = await _body(request, accounts.CampaignChanges)
    name = request.match_info["campaign"]
    async with request.app[POOL].acquire() as conn:
        campaign = await accounts.update_campaign(
            conn, _context(request), _account(request), name, changes
        )
    return _json(campaign)


@routes.get(f"{ACCOUNT}/settings")
@_admin
async def show_settings(request: web.Request) -> web.StreamResponse:
    async with request.app[POOL].acquire() as conn:
        return _json(await accounts.account_settings(conn, _account(request)))


@routes.patch(f"{ACCOUNT}/settings")
@_admin
async def change_settings(request: web.Request) -> web.StreamResponse:
    changes = await _body(request, accounts.SettingsChanges)
    async with request.app[POOL].acquire() as conn:
        settings = await accounts.change_settings(
            conn, _context(request), _account(request), changes
        )
    return _json(settings)


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
