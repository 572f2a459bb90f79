"""Query parameters of the native routes that take none (a path id, a body, or nothing): an
unknown, repeated, empty or NUL parameter is a 400 problem naming it, after authentication, and
a refused write changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from lead_ledger.settings import Settings
from tests.api.test_ozonetel_add import Account, add, make_account
from tests.conftest import ADMIN_TOKEN
from tests.support import Client

# (method, path, body): every native route that takes no query parameter. `{...}` are ids of
# the things the `world` fixture makes.
ROUTES = [
    ("GET", "/v1/leads/{lead}/history", None),
    ("GET", "/v1/jobs/{export}", None),
    ("GET", "/v1/jobs/{export}/rejected.csv", None),
    ("GET", "/v1/exports/{export}", None),
    ("GET", "/v1/exports/{export}/file", None),
    ("GET", "/v1/erasures/{erasure}", None),
    ("GET", "/v1/subscriptions/{subscription}", None),
    ("POST", "/v1/exports", {"campaign": "sales"}),
    ("POST", "/v1/erasures", {"phone": "9876543210"}),
    ("POST", "/v1/dnc", [{"phone": "9812345678"}]),
    ("PATCH", "/v1/dnc/{entry}", {"status": "Inactive"}),
    ("DELETE", "/v1/dnc/{entry}", None),
    ("POST", "/v1/subscriptions", {"url": "{receiver}"}),
    ("PATCH", "/v1/subscriptions/{subscription}", {"state": "paused"}),
    ("DELETE", "/v1/subscriptions/{subscription}", None),
]
ROUTE_IDS = [f"{method} {path}" for method, path, _ in ROUTES]


@dataclass(frozen=True)
class World:
    account: Account
    ids: dict[str, str]  # lead, export, erasure, entry, subscription, receiver

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.account.native_key}"}

    def path(self, path: str) -> str:
        return path.format(**self.ids)

    def body(self, body: object) -> object:
        if isinstance(body, dict):
            return {k: v.format(**self.ids) if isinstance(v, str) else v for k, v in body.items()}
        return body


@pytest.fixture
def settings() -> Settings:
    """Subscriptions may target the local receiver."""
    return Settings(
        admin_token=ADMIN_TOKEN, db_pool_min=1, db_pool_max=8, callback_allow_private=True
    )


@pytest.fixture
async def receiver(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> str:
    """A subscription target that takes every batch."""

    async def take(_request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", take)
    server = await aiohttp_server(app)
    return str(server.make_url("/hook"))


async def _json(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


@pytest.fixture
async def world(client: Client, receiver: str) -> World:
    """An account with a lead, an export, an erasure, a DNC entry and a subscription."""
    account = await make_account(client)
    headers = {"Authorization": f"Bearer {account.native_key}"}
    await add(client, account, phoneNumber="9876500001")
    (lead,) = (await _json(await client.get("/v1/leads", headers=headers), 200))["leads"]
    # Not waited for: the routes answer for a queued export as for a finished one.
    export = await _json(
        await client.post("/v1/exports", json={"campaign": "sales"}, headers=headers), 202
    )
    erasure = await _json(
        await client.post("/v1/erasures", json={"phone": "9876500002"}, headers=headers), 200
    )
    (entry,) = (
        await _json(
            await client.post("/v1/dnc", json=[{"phone": "9876500003"}], headers=headers), 201
        )
    )["entries"]
    subscription = await _json(
        await client.post("/v1/subscriptions", json={"url": receiver}, headers=headers), 201
    )
    return World(
        account,
        {
            "lead": str(lead["lead_id"]),
            "export": str(export["export_id"]),
            "erasure": erasure["erasure_id"],
            "entry": str(entry["entry_id"]),
            "subscription": str(subscription["subscription_id"]),
            "receiver": receiver,
        },
    )


async def _audit(client: Client, world: World) -> list[int]:
    """The positions of the account's events but the export job's, which runs meanwhile."""
    page = await _json(await client.get("/v1/audit?limit=1000", headers=world.headers), 200)
    running = f"job-{world.ids['export']}"
    return [e["position"] for e in page["events"] if e["stream_id"] != running]


async def _refused(
    client: Client, world: World, method: str, path: str, body: object, query: str
) -> dict[str, Any]:
    response = await client.request(
        method, f"{world.path(path)}?{query}", json=world.body(body), headers=world.headers
    )
    assert response.status == 400, await response.text()
    assert response.content_type == "application/problem+json"
    problem: dict[str, Any] = await response.json()
    return problem


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
async def test_an_unknown_parameter_is_refused_naming_it(
    client: Client, world: World, method: str, path: str, body: object
) -> None:
    """`?zz=1` (and `?zz=%00`) is a 400 naming zz after authentication; nothing is written."""
    if method == "GET":  # the thing is there: only the parameter is at fault
        clean = await client.get(world.path(path), headers=world.headers)
        # The export's file is a 404 until its job has written it.
        found = (200, 404) if path.endswith("/file") else (200,)
        assert clean.status in found, await clean.text()
    before = await _audit(client, world)
    unknown = await _refused(client, world, method, path, body, "zz=1")
    assert (unknown["parameter"], unknown["title"]) == ("zz", "Invalid query parameter")
    nul = await _refused(client, world, method, path, body, "zz=%00")
    assert nul["parameter"] == "zz"
    assert await _audit(client, world) == before
    # Authentication first, as on /v1/leads/{id}: without a key the parameter is not looked at.
    anonymous = await client.request(method, f"{world.path(path)}?zz=1", json=world.body(body))
    assert anonymous.status == 401, await anonymous.text()


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
async def test_a_parameter_given_twice_or_empty_is_refused(
    client: Client, world: World, method: str, path: str, body: object
) -> None:
    """`?limit=1&limit=2` and `?zz=` are a 400 naming the parameter and saying why."""
    for query, parameter, detail in (
        ("limit=1&limit=2", "limit", "limit is given more than once"),
        ("zz=", "zz", "zz must not be empty"),
    ):
        problem = await _refused(client, world, method, path, body, query)
        assert (problem["parameter"], problem["detail"]) == (parameter, detail), query


async def test_a_refused_removal_leaves_the_entry(client: Client, world: World) -> None:
    """DELETE /v1/dnc/{id}?zz=1 is refused and the entry still lists and blocks."""
    entry = world.ids["entry"]
    await _refused(client, world, "DELETE", "/v1/dnc/{entry}", None, "zz=1")
    listed = await _json(await client.get("/v1/dnc", headers=world.headers), 200)
    assert [str(e["entry_id"]) for e in listed["entries"]] == [entry]
    check = await client.get("/v1/dnc/check?phone=9876500003", headers=world.headers)
    assert (await _json(check, 200))["blocked"] is True
    removed = await client.delete(f"/v1/dnc/{entry}", headers=world.headers)
    assert removed.status == 204


async def test_a_missing_required_parameter_is_named(client: Client, world: World) -> None:
    """GET /v1/dnc/check without `phone` is a 400 whose `parameter` names phone."""
    response = await client.get("/v1/dnc/check?campaign=sales", headers=world.headers)
    assert response.status == 400, await response.text()
    problem = await response.json()
    assert (problem["parameter"], problem["title"]) == ("phone", "Invalid query parameter")
    assert problem["detail"] == "Object missing required field `phone`"
