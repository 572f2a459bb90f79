"""Webhook subscriptions: `/v1/subscriptions` (native key, account-scoped, problem+json;
docs/subscriptions.md), and the background task that delivers them in every `serve` process.

`setup(app)` registers the routes and the delivery task (after the pool opens). The delivery
policy is in `app[POLICY]`, set by `setup` from the settings; tests replace it before start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Final, Literal, TypeVar

import aiohttp
import msgspec
from aiohttp import web

from lead_ledger.api import openapi
from lead_ledger.api.auth import Principal
from lead_ledger.api.callback_http import callback_session
from lead_ledger.api.edge import Refused, context, json_response
from lead_ledger.api.keys import CLOCK, DATABASE_URL, POOL, SETTINGS
from lead_ledger.api.native import NATIVE, Cursor, NoQuery, query_params
from lead_ledger.api.openapi import BAD_REQUEST, UNAUTHORIZED, Response, problem_response
from lead_ledger.api.problems import invalid_body, problem, validation_problem
from lead_ledger.service import reads
from lead_ledger.service.inputs import NUL, decimal, decode_json
from lead_ledger.service.subscriptions import manage, signing
from lead_ledger.service.subscriptions.delivery import Deliverer, Policy, SignedPost

routes = web.RouteTableDef()
S = TypeVar("S", bound=msgspec.Struct)
POLICY: Final = web.AppKey("subscription_policy", Policy)
STOP_GRACE_SECONDS: Final = 15.0

NOT_FOUND: Final = problem_response("No such subscription in this account")
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=manage.MAX_URL_LENGTH)]
EventTypes = Annotated[list[str], msgspec.Meta(max_length=len(manage.LEAD_TYPE_NAMES))]
Secret = Annotated[str, msgspec.Meta(min_length=16, max_length=256)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=manage.MAX_ATTEMPTS_LISTED)]


class NewSubscription(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`event_types` null: every lead event; `campaign` (a name or id) null: every campaign;
    `secret` absent: one is made. The secret is shown in this answer only."""

    url: Url
    event_types: EventTypes | None = None
    campaign: str | None = None
    secret: Secret | None = None


class SubscriptionPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`state`: paused stops delivery, active resumes it (also after a suspension)."""

    state: Literal["active", "paused"] | None = None
    url: Url | None = None
    event_types: EventTypes | msgspec.UnsetType | None = msgspec.UNSET


class ListQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    after: Cursor = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class AttemptsQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    limit: Limit = 50


def setup(app: web.Application) -> None:
    """Register the routes, and the delivery task that runs while the app does."""
    app[POLICY] = Policy(allow_private=app[SETTINGS].callback_allow_private)
    app.add_routes(routes)
    app.cleanup_ctx.append(background)


async def background(app: web.Application) -> AsyncIterator[None]:
    """Deliver subscriptions while the app runs; on shutdown, stop and release the leases."""
    policy = app[POLICY]
    owner = f"{socket.gethostname()}:{os.getpid()}:{id(app):x}"
    stop = asyncio.Event()
    async with callback_session(allow_private=policy.allow_private) as session:
        deliverer = Deliverer(
            app[POOL], signed_poster(session), owner=owner, clock=app[CLOCK], policy=policy
        )
        task = asyncio.create_task(deliverer.run(stop, listen_url=app[DATABASE_URL]))
        try:
            yield
        finally:
            stop.set()
            done, _ = await asyncio.wait([task], timeout=STOP_GRACE_SECONDS)
            if not done:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def signed_poster(session: aiohttp.ClientSession) -> SignedPost:
    """POST a signed batch; the receiver's status (redirects unfollowed, as for callbacks), or
    OSError when nothing answered."""

    async def post(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            async with session.post(
                url, data=body, headers=dict(headers), allow_redirects=False
            ) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise OSError(str(error) or type(error).__name__) from error

    return post


def _subscription_id(request: web.Request) -> int:
    text = request.match_info["id"]
    subscription_id = decimal(text, minimum=1)
    if subscription_id is None:  # not a possible id is reported like any missing one
        raise Refused(problem(404, f"no subscription {text}"))
    return subscription_id


def _body(raw: bytes, kind: type[S]) -> S:
    try:
        return decode_json(raw, lambda data: msgspec.json.decode(data, type=kind))
    except msgspec.DecodeError as error:  # also ValidationError: malformed or mistyped
        raise Refused(validation_problem(error)) from error


def _refused(error: manage.SubscriptionError) -> Refused:
    return Refused(invalid_body(error.message, field=error.field))


async def _checked_url(request: web.Request, url: str) -> str:
    if NUL in url:
        raise _refused(manage.SubscriptionError("url holds a NUL character", field="url"))
    try:
        await manage.check_url(url, allow_private=request.app[POLICY].allow_private)
    except manage.SubscriptionError as error:
        raise _refused(error) from error
    return url


def _checked_types(types: list[str] | None) -> list[str] | None:
    try:
        return manage.check_types(types)
    except manage.SubscriptionError as error:
        raise _refused(error) from error


@routes.post("/v1/subscriptions")
@openapi.operation(
    summary="Subscribe a URL to the account's lead events",
    description=(
        "Every matching event of the account's feed, from now on, is POSTed to `url` in feed"
        " order, at least once, in signed batches of up to 100 (docs/subscriptions.md)."
        " Private and loopback targets are refused unless LEDGER_CALLBACK_ALLOW_PRIVATE=1."
        " The answer holds the secret the batches are signed with: it is never shown again."
    ),
    tags=("native",),
    security=openapi.NATIVE_KEY,
    body=NewSubscription,
    responses={
        201: Response("The subscription, with its secret", manage.CreatedSubscription),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
    },
)
@NATIVE.route
async def create(request: web.Request, principal: Principal) -> web.StreamResponse:
    query_params(request, NoQuery)
    new = _body(await request.read(), NewSubscription)
    if NUL in (new.campaign or "") or NUL in (new.secret or ""):
        return invalid_body("holds a NUL character")
    url = await _checked_url(request, new.url)
    types = _checked_types(new.event_types)
    async with request.app[POOL].acquire() as conn:
        try:
            campaign_id = await reads.campaign_named(conn, principal.account_id, new.campaign)
        except reads.UnknownCampaignError:
            return invalid_body(f"no campaign {new.campaign!r}", field="campaign")
        created = await manage.create(
            conn,
            context(request, principal),
            principal.account_id,
            url=url,
            event_types=types,
            campaign_id=campaign_id,
            secret=new.secret or signing.new_secret(),
        )
    return json_response(created, status=201)


@routes.get("/v1/subscriptions")
@openapi.operation(
    summary="The account's subscriptions, in subscription_id order",
    description="Keyset paging: pass `next_after` back as `after` until it is null.",
    tags=("native",),
    security=openapi.NATIVE_KEY,
    query=ListQuery,
    responses={
        200: Response("A page of subscriptions", manage.SubscriptionPage),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
    },
)
@NATIVE.route
async def list_subscriptions(request: web.Request, principal: Principal) -> web.StreamResponse:
    params = query_params(request, ListQuery)
    async with request.app[POOL].acquire() as conn:
        page = await manage.page(conn, principal.account_id, after=params.after, limit=params.limit)
    return json_response(page)


@routes.get("/v1/subscriptions/{id}")
@openapi.operation(
    summary="One subscription: its configuration, state and checkpoint",
    tags=("native",),
    security=openapi.NATIVE_KEY,
    path={"id": int},
    responses={
        200: Response("The subscription", manage.SubscriptionView),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: NOT_FOUND,
    },
)
@NATIVE.route
async def get_subscription(request: web.Request, principal: Principal) -> web.StreamResponse:
    subscription_id = _subscription_id(request)
    query_params(request, NoQuery)
    async with request.app[POOL].acquire() as conn:
        try:
            view = await manage.get(conn, principal.account_id, subscription_id)
        except manage.SubscriptionNotFoundError:
            return problem(404, f"no subscription {subscription_id}")
    return json_response(view)


@routes.patch("/v1/subscriptions/{id}")
@openapi.operation(
    summary="Pause, resume, or change a subscription's URL or event types",
    description=(
        "`state`: `paused` stops delivery where it is; `active` resumes it from the checkpoint"
        " (also after a suspension), so nothing is missed. `event_types` null: every lead event."
    ),
    tags=("native",),
    security=openapi.NATIVE_KEY,
    path={"id": int},
    body=SubscriptionPatch,
    responses={
        200: Response("The subscription", manage.SubscriptionView),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: NOT_FOUND,
    },
)
@NATIVE.route
async def change(request: web.Request, principal: Principal) -> web.StreamResponse:
    subscription_id = _subscription_id(request)
    query_params(request, NoQuery)
    patch = _body(await request.read(), SubscriptionPatch)
    if patch.state is None and patch.url is None and patch.event_types is msgspec.UNSET:
        return invalid_body("give state, url, event_types or several")
    url = None if patch.url is None else await _checked_url(request, patch.url)
    types = patch.event_types
    if not isinstance(types, msgspec.UnsetType):
        types = _checked_types(types)
    async with request.app[POOL].acquire() as conn:
        try:
            view = await manage.change(
                conn,
                context(request, principal),
                principal.account_id,
                subscription_id,
                url=url,
                event_types=types,
                state=patch.state,
            )
        except manage.SubscriptionNotFoundError:
            return problem(404, f"no subscription {subscription_id}")
    return json_response(view)


@routes.delete("/v1/subscriptions/{id}")
@openapi.operation(
    summary="Delete a subscription: nothing more is delivered",
    tags=("native",),
    security=openapi.NATIVE_KEY,
    path={"id": int},
    responses={204: Response("Deleted"), 400: BAD_REQUEST, 401: UNAUTHORIZED, 404: NOT_FOUND},
)
@NATIVE.route
async def delete(request: web.Request, principal: Principal) -> web.StreamResponse:
    subscription_id = _subscription_id(request)
    query_params(request, NoQuery)
    async with request.app[POOL].acquire() as conn:
        try:
            await manage.delete(
                conn, context(request, principal), principal.account_id, subscription_id
            )
        except manage.SubscriptionNotFoundError:
            return problem(404, f"no subscription {subscription_id}")
    return web.Response(status=204)


@routes.get("/v1/subscriptions/{id}/deliveries")
@openapi.operation(
    summary="A subscription's recent delivery attempts, newest first",
    description=(
        "Each POST of a batch: its X-Ledger-Delivery id (the same for every retry of one"
        " batch), the feed positions it held, the receiver's status or the error, the latency."
    ),
    tags=("native",),
    security=openapi.NATIVE_KEY,
    path={"id": int},
    query=AttemptsQuery,
    responses={
        200: Response("The attempts", manage.Attempts),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: NOT_FOUND,
    },
)
@NATIVE.route
async def deliveries(request: web.Request, principal: Principal) -> web.StreamResponse:
    subscription_id = _subscription_id(request)
    params = query_params(request, AttemptsQuery)
    async with request.app[POOL].acquire() as conn:
        try:
            found = await manage.attempts(
                conn, principal.account_id, subscription_id, limit=params.limit
            )
        except manage.SubscriptionNotFoundError:
            return problem(404, f"no subscription {subscription_id}")
    return json_response(found)
