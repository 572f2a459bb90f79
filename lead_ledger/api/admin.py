"""The admin API, `/v1/admin/...`: JSON in, one service call, JSON out; errors as problem+json.

Only `Authorization: Bearer $LEDGER_ADMIN_TOKEN` gets in; without a configured token the admin
API answers 401 to everyone. `{account}` in a path is the account's name or its numeric id.

One module past 400 lines: fourteen routes of one dialect, most of it their OpenAPI descriptions.
"""

from __future__ import annotations

from typing import Annotated, Final, TypeVar

import msgspec
from aiohttp import web

from lead_ledger.api import openapi
from lead_ledger.api.auth import is_admin
from lead_ledger.api.edge import Dialect, Refused, json_response, origin
from lead_ledger.api.keys import POOL, SETTINGS
from lead_ledger.api.openapi import Response, problem_response
from lead_ledger.api.problems import (
    body_too_large,
    internal_error,
    invalid_body,
    problem,
    validation_problem,
)
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import AccountSettings
from lead_ledger.service import account_reads, accounts
from lead_ledger.service.account_reads import (
    Account,
    AccountDetail,
    Agent,
    Campaign,
    IssuedCredential,
    Skill,
    User,
)
from lead_ledger.service.errors import Conflict, Invalid, NotFound
from lead_ledger.service.inputs import decode_json
from lead_ledger.service.writer import Context

routes = web.RouteTableDef()

PREFIX: Final = "/v1/admin"
ACCOUNT: Final = f"{PREFIX}/accounts/{{account}}"
ADMIN_ACTOR: Final = Actor(dialect="admin")

T = TypeVar("T")


class AccountList(msgspec.Struct, frozen=True, kw_only=True):
    accounts: list[Account]


class CampaignList(msgspec.Struct, frozen=True, kw_only=True):
    campaigns: list[Campaign]


# --- what the OpenAPI document says of every route (the answers _admin gives on refusals) -------

TAGS: Final = ("admin",)
AccountName = Annotated[
    str, msgspec.Meta(description="The account's name (any case) or its numeric id")
]
ACCOUNT_PATH: Final = {"account": AccountName}
CAMPAIGN_PATH: Final = ACCOUNT_PATH | {
    "campaign": Annotated[str, msgspec.Meta(description="The campaign's name (exact case)")]
}
CREDENTIAL_PATH: Final = ACCOUNT_PATH | {
    "credential_id": Annotated[str, msgspec.Meta(description="The credential's `id`")]
}
UNAUTHORIZED: Final = problem_response(
    "Missing or wrong admin token, or no LEDGER_ADMIN_TOKEN configured"
)
INVALID: Final = problem_response(
    "Malformed JSON, an unknown field, a wrong type or a refused value; `field` names it"
)
NO_ACCOUNT: Final = problem_response("No such account")
NO_CAMPAIGN: Final = problem_response("No such account, or no such campaign in it")
CAMPAIGN_TAKEN: Final = problem_response("The account has a campaign with this name")


async def _authenticate(request: web.Request) -> Context:
    """The admin token; the caller is then the admin, and this its context."""
    if not is_admin(request):
        # Without a token configured no caller can succeed: say so, not "send the token".
        off = not request.app[SETTINGS].admin_token
        detail = (
            "the admin API is off: this server has no LEDGER_ADMIN_TOKEN (set it to a secret"
            " of your choosing and restart; lead-ledger admin works without it)"
            if off
            else "admin API: send Authorization: Bearer <LEDGER_ADMIN_TOKEN>"
        )
        raise Refused(
            problem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="lead-ledger admin"'})
        )
    return origin(request).context(ADMIN_ACTOR)


def _translate(refusal: Exception) -> web.Response | None:
    """Service refusals as problem+json (never a 500)."""
    match refusal:
        case Invalid():
            return invalid_body(refusal.message, field=refusal.field)
        case NotFound():
            return problem(404, str(refusal))
        case Conflict():
            return problem(409, str(refusal))
        case _:
            return None


ADMIN: Final = Dialect(
    name="admin",
    authenticate=_authenticate,
    too_large=body_too_large,
    unexpected=internal_error,
    translate=_translate,
)


async def _body(request: web.Request, kind: type[T]) -> T:
    body = await request.read()
    try:
        decoded: T = decode_json(body, lambda data: msgspec.json.decode(data, type=kind))
    except msgspec.DecodeError as error:  # also ValidationError: malformed or mistyped
        raise Refused(validation_problem(error)) from error
    return decoded


def _account(request: web.Request) -> str:
    return request.match_info["account"]


@routes.post(f"{PREFIX}/accounts")
@openapi.operation(
    summary="Create an account",
    description="Its name must not be all digits: `{account}` in paths is a name or an id.",
    tags=TAGS,
    security=openapi.ADMIN_TOKEN,
    body=accounts.NewAccount,
    responses={
        201: Response("The account, with default settings", Account),
        400: INVALID,
        401: UNAUTHORIZED,
        409: problem_response("An account has this name (in any case)"),
    },
)
@ADMIN.route
async def create_account(request: web.Request, ctx: Context) -> web.StreamResponse:
    new = await _body(request, accounts.NewAccount)
    async with request.app[POOL].acquire() as conn:
        return json_response(await accounts.create_account(conn, ctx, new), 201)


@routes.get(f"{PREFIX}/accounts")
@openapi.operation(
    summary="List the accounts, in id order",
    tags=TAGS,
    security=openapi.ADMIN_TOKEN,
    responses={200: Response("The accounts", AccountList), 401: UNAUTHORIZED},
)
@ADMIN.route
async def list_accounts(request: web.Request, _ctx: Context) -> web.StreamResponse:
    async with request.app[POOL].acquire() as conn:
        return json_response(AccountList(accounts=await account_reads.list_accounts(conn)))


@routes.get(ACCOUNT)
@openapi.operation(
    summary="One account with its campaigns, agents, skills, users and credentials",
    description="Never a password hash, a key or a key's hash.",
    tags=TAGS,
    security=openapi.ADMIN_TOKEN,
    path=ACCOUNT_PATH,
    responses={
        200: Response("The account", AccountDetail),
        401: UNAUTHORIZED,
        404: NO_ACCOUNT,
    },
)
@ADMIN.route
async def show_account(request: web.Request, _ctx: Context) -> web.StreamResponse:
    async with request.app[POOL].acquire() as conn:
        return json_response(await account_reads.get_account(conn, _account(request)))


@routes.post(f"{ACCOUNT}/credentials")
@openapi.operation(
    summary="Issue a credential for one API dialect",
    description="The key is in this answer only: the ledger stores its SHA-256.",
    tags=TAGS,
    security=openapi.ADMIN_TOKEN,
    path=ACCOUNT_PATH,
    body=accounts.NewCredential,
    responses={
        201: Response("The credential and its key, shown once", IssuedCredential),
        400: INVALID,
        401: UNAUTHORIZED,
        404: NO_ACCOUNT,
    },
)
@ADMIN.route
async def issue_credential(request: web.Request, ctx: Context) -> web.StreamResponse:
    new = await _body(request, accounts.NewCredential)
    async with request.app[POOL].acquire() as conn:
        issued = await accounts.issue_credential(conn, ctx, _account(request), new)
    return json_response(issued, 201)


@routes.delete(f"{ACCOUNT}/credentials/{{credential_id}}")
@openapi.operation(
    summary="Revoke a credential",
    tags=TAGS,
    security=openapi.ADMIN_TOKEN,
    path=CREDENTIAL_PATH,
    responses={
        204: Response("Revoked (also when it already was)"),
        401: UNAUTHORIZED,
        404: problem_response("No such account, or no such credential in it"),
    },
)
@ADMIN.route
async def revoke_credential(request: web.Request, ctx: Context) -> web.StreamResponse:
    credential_id = request.match_info["credential_id"]
    async with request.app[POOL].acquire() as conn:
        await accounts.revoke_credential(conn, ctx, _account(request), credential_id)
    return web.Response(status=204)


@routes.post(f"{ACCOUNT}/users")
@openapi.operation(
    summary="Create a user (a Flexydial login)",
    tags=TAGS,
    security=openapi.ADMIN_TOKEN,
    path=ACCOUNT_PATH,
    body=accounts.NewUser,
    responses={
        201: Response("The user (never the password nor its hash)", User),
        400: INVALID,
        401: UNAUTHORIZED,
        404: NO_ACCOUNT,
        409: problem_response("The username is taken (usernames are unique across accounts)"),
    },
)
@ADMIN.route
async def create_user(request: web.Request, ctx: Context) -> web.StreamResponse:
    new = await _body(request, accounts.NewUser)
    async with request.app[POOL].acquire() as conn:
        user = await accounts.create_user(conn, ctx, _account(request), new)
    return json_response(user, 201)


@routes.post(f"{ACCOUNT}/agents")
@openapi.operation(
    summary="Add an agent",
    tags=TAGS,
    security=openapi.ADMIN_TOKEN,
    path=ACCOUNT_PATH,
    body=accounts.NewAgent,
    responses={
        201: Response("The agent", Agent),
        400: INVALID,
        401: UNAUTHORIZED,
        404: NO_ACCOUNT,
        409: problem_response("The account has an agent with this id"),
    },
)
@ADMIN.route
async def add_agent(request: web.Request, ctx: Context) -> web.StreamResponse:
    new = await _body(request, accounts.NewAgent)
    async with request.app[POOL].acquire() as conn:
        agent = await accounts.add_agent(conn, ctx, _account(request), new)
    return json_response(agent, 201)


@routes.post(f"{ACCOUNT}/skills")
@openapi.operation(
    summary="Add a skill",
    tags=TAGS,
    security=openapi.ADMIN_TOKEN,
    path=ACCOUNT_PATH,
    body=accounts.NewSkill,
    responses={
        201: Response("The skill", Skill),
        400: INVALID,
        401: UNAUTHORIZED,
        404: NO_ACCOUNT,
        409: problem_response("The account has a skill with this name"),
    },
)
@ADMIN.route
async def add_skill(request: web.Request, ctx: Context) -> web.StreamResponse:
    new = await _body(request, accounts.NewSkill)
    async with request.app[POOL].acquire() as conn:
        skill = await accounts.add_skill(conn, ctx, _account(request), new)
    return json_response(skill, 201)


@routes.post(f"{ACCOUNT}/campaigns")
@openapi.operation(
    summary="Create a campaign",
    description="Its `id` is global, from a sequence; jtel calls it DiallerCampaignsID.",
    tags=TAGS,
    security=openapi.ADMIN_TOKEN,
    path=ACCOUNT_PATH,
    body=accounts.NewCampaign,
    responses={
        201: Response("The campaign", Campaign),
        400: INVALID,
        401: UNAUTHORIZED,
        404: NO_ACCOUNT,
        409: CAMPAIGN_TAKEN,
    },
)
@ADMIN.route
async def create_campaign(request: web.Request, ctx: Context) -> web.StreamResponse:
    new = await _body(request, accounts.NewCampaign)
    async with request.app[POOL].acquire() as conn:
        campaign = await accounts.create_campaign(conn, ctx, _account(request), new)
    return json_response(campaign, 201)


@routes.get(f"{ACCOUNT}/campaigns")
@openapi.operation(
    summary="List the account's campaigns, in id order",
    tags=TAGS,
    security=openapi.ADMIN_TOKEN,
    path=ACCOUNT_PATH,
    responses={
        200: Response("The campaigns", CampaignList),
        401: UNAUTHORIZED,
        404: NO_ACCOUNT,
    },
)
@ADMIN.route
async def list_campaigns(request: web.Request, _ctx: Context) -> web.StreamResponse:
    async with request.app[POOL].acquire() as conn:
        campaigns = await account_reads.list_campaigns(conn, _account(request))
    return json_response(CampaignList(campaigns=campaigns))


@routes.get(f"{ACCOUNT}/campaigns/{{campaign}}")
@openapi.operation(
    summary="One campaign, by name",
    tags=TAGS,
    security=openapi.ADMIN_TOKEN,
    path=CAMPAIGN_PATH,
    responses={
        200: Response("The campaign", Campaign),
        401: UNAUTHORIZED,
        404: NO_CAMPAIGN,
    },
)
@ADMIN.route
async def show_campaign(request: web.Request, _ctx: Context) -> web.StreamResponse:
    name = request.match_info["campaign"]
    async with request.app[POOL].acquire() as conn:
        return json_response(await account_reads.get_campaign(conn, _account(request), name))


@routes.patch(f"{ACCOUNT}/campaigns/{{campaign}}")
@openapi.operation(
    summary="Change a campaign",
    description=(
        "Fields left out keep their value; `crm_fields: null` clears them; `name` renames. A"
        " change of `state` alone records CampaignStarted or CampaignStopped, any other change"
        " CampaignUpdated; a PATCH that changes nothing records nothing."
    ),
    tags=TAGS,
    security=openapi.ADMIN_TOKEN,
    path=CAMPAIGN_PATH,
    body=accounts.CampaignChanges,
    responses={
        200: Response("The campaign after the change", Campaign),
        400: INVALID,
        401: UNAUTHORIZED,
        404: NO_CAMPAIGN,
        409: CAMPAIGN_TAKEN,
    },
)
@ADMIN.route
async def update_campaign(request: web.Request, ctx: Context) -> web.StreamResponse:
    changes = await _body(request, accounts.CampaignChanges)
    name = request.match_info["campaign"]
    async with request.app[POOL].acquire() as conn:
        campaign = await accounts.update_campaign(conn, ctx, _account(request), name, changes)
    return json_response(campaign)


@routes.get(f"{ACCOUNT}/settings")
@openapi.operation(
    summary="The account's settings",
    tags=TAGS,
    security=openapi.ADMIN_TOKEN,
    path=ACCOUNT_PATH,
    responses={
        200: Response("All settings", AccountSettings),
        401: UNAUTHORIZED,
        404: NO_ACCOUNT,
    },
)
@ADMIN.route
async def show_settings(request: web.Request, _ctx: Context) -> web.StreamResponse:
    async with request.app[POOL].acquire() as conn:
        return json_response(await account_reads.account_settings(conn, _account(request)))


@routes.patch(f"{ACCOUNT}/settings")
@openapi.operation(
    summary="Change the account's settings",
    description=(
        "Fields left out keep their value; null clears `default_region` and `office_hours`;"
        " `rate_limits` merges (a limit left out keeps its value)."
    ),
    tags=TAGS,
    security=openapi.ADMIN_TOKEN,
    path=ACCOUNT_PATH,
    body=accounts.SettingsChanges,
    responses={
        200: Response("All settings after the change", AccountSettings),
        400: INVALID,
        401: UNAUTHORIZED,
        404: NO_ACCOUNT,
    },
)
@ADMIN.route
async def change_settings(request: web.Request, ctx: Context) -> web.StreamResponse:
    changes = await _body(request, accounts.SettingsChanges)
    async with request.app[POOL].acquire() as conn:
        settings = await accounts.change_settings(conn, ctx, _account(request), changes)
    return json_response(settings)
