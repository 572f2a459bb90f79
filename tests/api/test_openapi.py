"""The OpenAPI document: valid 3.1, and covering every route the app registers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from openapi_spec_validator import validate

from lead_ledger.api import openapi
from lead_ledger.api.app import create_app
from lead_ledger.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.support import Client


@pytest.fixture
async def api(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    """The real app with the native and openapi routes, on its own fresh database."""
    return await aiohttp_client(create_app(settings, database_url))


async def fetch_document(api: Client) -> dict[str, Any]:
    response = await api.get("/openapi.json", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status == 200
    document: dict[str, Any] = await response.json()
    return document


def undocumented(app: web.Application, document: dict[str, Any]) -> set[str]:
    """`METHOD /canonical/path` of every route the app serves that the document lacks."""
    missing = set()
    for resource in app.router.resources():
        for route in resource:
            if route.method == "HEAD":
                continue  # aiohttp adds HEAD beside every GET; it needs no entry of its own
            methods = document["paths"].get(resource.canonical, {})
            if route.method.lower() not in methods:
                missing.add(f"{route.method} {resource.canonical}")
    return missing


async def test_the_document_is_valid_openapi_3_1(api: Client) -> None:
    """openapi-spec-validator accepts the served document."""
    document = await fetch_document(api)
    assert document["openapi"].startswith("3.1")
    validate(document)


async def test_every_registered_route_is_documented(api: Client) -> None:
    """Each route of the running app (HEAD aside) has an operation in the document."""
    document = await fetch_document(api)
    assert api.app is not None
    assert undocumented(api.app, document) == set()
    assert {"/healthz", "/readyz", "/v1/leads", "/v1/events/stream"} <= set(document["paths"])


async def test_a_route_that_forgets_to_document_itself_is_caught(
    database_url: str, settings: Settings
) -> None:
    """A new module's undocumented route shows up in the coverage check (so CI fails)."""
    app = create_app(settings, database_url)
    before = undocumented(app, openapi.build_document(app))

    async def forgotten(_request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_post("/v1/forgotten/{id}", forgotten)
    after = undocumented(app, openapi.build_document(app))
    assert after - before == {"POST /v1/forgotten/{id}"}


async def test_operations_carry_parameters_schemas_and_security(api: Client) -> None:
    """Query Structs become parameters with their limits; responses reference components."""
    document = await fetch_document(api)
    leads = document["paths"]["/v1/leads"]["get"]
    limit = next(p for p in leads["parameters"] if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    assert leads["security"] == [{"nativeKey": []}]
    page = leads["responses"]["200"]["content"]["application/json"]["schema"]
    assert page == {"$ref": "#/components/schemas/LeadPage"}
    assert "application/problem+json" in leads["responses"]["401"]["content"]
    lead = document["paths"]["/v1/leads/{id}"]["get"]
    path_id = next(p for p in lead["parameters"] if p["in"] == "path")
    assert path_id == {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
    audit = {(p["name"], p["in"]) for p in document["paths"]["/v1/audit"]["get"]["parameters"]}
    assert audit == {
        *((name, "query") for name in ("dialect", "actor", "type", "from", "to", "after", "limit")),
        ("X-Ledger-Min-Position", "header"),
    }
    assert document["paths"]["/healthz"]["get"]["security"] == []


async def test_the_document_is_public_and_readable_from_any_origin(api: Client) -> None:
    """No key is needed (it documents routes, not data), and CORS lets a viewer served from
    another origin load it; every security scheme the routes use is declared."""
    response = await api.get("/openapi.json")
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    document = await response.json()
    schemes = document["components"]["securitySchemes"]
    assert {"nativeKey", "adminToken"} <= set(schemes)
    used = {
        name
        for path in document["paths"].values()
        for operation in path.values()
        for requirement in operation["security"]
        for name in requirement
    }
    assert used == set(schemes)


async def test_native_query_times_and_numbers_say_how_they_are_written(api: Client) -> None:
    """A time parameter is a date-time string (RFC 3339), a whole number decimal digits only."""
    document = await fetch_document(api)
    lead = document["paths"]["/v1/leads/{id}"]["get"]["parameters"]
    as_of = next(p for p in lead if p["name"] == "as_of")
    assert {"type": "string", "format": "date-time"} in as_of["schema"]["anyOf"]
    assert "RFC 3339" in as_of["description"]
    version = next(p for p in lead if p["name"] == "as_of_version")
    assert "decimal digits only" in version["description"]
    jobs = document["paths"]["/v1/jobs"]["get"]["parameters"]
    assert "RFC 3339" in next(p for p in jobs if p["name"] == "from")["description"]
