"""OpenAPI 3.1 for every route the app registers, built from what each handler declares.

A handler documents itself where it is defined, so its path and method are never written twice:

    @routes.get("/v1/things/{id}")
    @openapi.operation(
        summary="One thing",
        security=openapi.NATIVE_KEY,
        path={"id": int},
        query=ThingQuery,                       # a msgspec Struct: one parameter per field
        responses={200: openapi.Response("The thing", Thing), 404: openapi.NOT_FOUND},
    )
    async def thing(request: web.Request) -> web.Response: ...

Handlers defined elsewhere (ops) are described with `describe(handler, Operation(...))`. The
document walks `app.router` at request time, so it shows exactly the routes registered; a route
without an operation is left out, and tests/api/test_openapi.py fails on it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, TypeVar

import msgspec
from aiohttp import web

from lead_ledger.api import docs_page, metrics, ops
from lead_ledger.api.edge import Dialect, json_response, no_authentication
from lead_ledger.api.problems import PROBLEM_JSON, body_too_large, internal_error
from lead_ledger.api.query_fields import QueryKind, field_kinds

Handler = Callable[..., Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

_REF_TEMPLATE: Final = "#/components/schemas/{name}"
_PATH_PARAMETER: Final = re.compile(r"\{(\w+)(?::[^}]*)?\}")


class Header(NamedTuple):
    """A request header an operation reads: what it means, and its JSON schema."""

    description: str
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SecurityScheme:
    """How a dialect's callers present their key; the document lists the schemes it uses."""

    name: str
    spec: Mapping[str, str]


def bearer(name: str, description: str) -> SecurityScheme:
    """`Authorization: Bearer <key>`."""
    return SecurityScheme(name, {"type": "http", "scheme": "bearer", "description": description})


def api_key_header(name: str, header: str, description: str) -> SecurityScheme:
    """A key in a header of its own (or in Authorization with a scheme of the vendor's)."""
    return SecurityScheme(
        name, {"type": "apiKey", "in": "header", "name": header, "description": description}
    )


NATIVE_KEY: Final = bearer(
    "nativeKey", "A credential of dialect `native`, issued by the admin API."
)
ADMIN_TOKEN: Final = bearer("adminToken", "LEDGER_ADMIN_TOKEN; the admin API is off without one.")


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 9457 problem details; some problems add members such as `parameter` or `field`."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    database: str | None = None


@dataclass(frozen=True, slots=True)
class Response:
    description: str
    schema: Any = None  # any type msgspec can describe; None for a body-less response
    content_type: str = "application/json"
    # Other media types the same body may come as (an export's file: csv, xlsx or jsonl).
    other_content_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    summary: str
    responses: Mapping[int, Response]
    description: str | None = None
    tags: tuple[str, ...] = ()
    security: SecurityScheme | None = None  # None for a public route
    path: Mapping[str, Any] = field(default_factory=dict)  # path parameter -> type (default str)
    query: type[msgspec.Struct] | None = None
    # request header -> its description, or a Header (a description and a schema)
    headers: Mapping[str, str | Header] = field(default_factory=dict)
    body: Any = None
    body_content_type: str = "application/json"


_OPERATIONS: Final[dict[Handler, Operation]] = {}


def problem_response(description: str) -> Response:
    return Response(description, Problem, PROBLEM_JSON)


UNAUTHORIZED: Final = problem_response("Missing, unknown or revoked key")
NOT_FOUND: Final = problem_response("No such resource in this account")
BAD_REQUEST: Final = problem_response("A parameter is invalid; `parameter` names it")


def describe(handler: Handler, op: Operation) -> None:
    """Document a handler (a route registered with it anywhere gets this operation)."""
    _OPERATIONS[handler] = op


def operation(  # noqa: PLR0913 - one keyword per part of an OpenAPI operation
    *,
    summary: str,
    responses: Mapping[int, Response],
    description: str | None = None,
    tags: tuple[str, ...] = (),
    security: SecurityScheme | None = None,
    path: Mapping[str, Any] | None = None,
    query: type[msgspec.Struct] | None = None,
    headers: Mapping[str, str | Header] | None = None,
    body: object = None,
    body_content_type: str = "application/json",
) -> Callable[[H], H]:
    """Decorator form of `describe`; returns the handler unchanged."""
    op = Operation(
        summary=summary,
        responses=responses,
        description=description,
        tags=tags,
        security=security,
        path=path or {},
        query=query,
        headers=headers or {},
        body=body,
        body_content_type=body_content_type,
    )

    def register(handler: H) -> H:
        describe(handler, op)
        return handler

    return register


# --- the document -------------------------------------------------------------------------------


def build_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the documented routes `app` has registered."""
    documented: list[tuple[str, str, Operation]] = []
    for route in app.router.routes():
        op = _OPERATIONS.get(route.handler)
        canonical = route.resource.canonical if route.resource is not None else None
        if op is None or canonical is None or route.method in ("HEAD", "*"):
            continue
        documented.append((canonical, route.method.lower(), op))

    types = _types(op for _, _, op in documented)
    refs, components = msgspec.json.schema_components(types, ref_template=_REF_TEMPLATE)
    schema_of = dict(zip(types, refs, strict=True))

    paths: dict[str, dict[str, Any]] = {}
    for canonical, method, op in documented:
        paths.setdefault(canonical, {})[method] = _operation(canonical, op, schema_of, components)
    used = {op.security.name: op.security.spec for _, _, op in documented if op.security}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lead-ledger",
            "version": "1",
            "description": "An event-sourced ledger of outbound-dialer leads.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {name: dict(used[name]) for name in sorted(used)},
        },
    }


def _types(ops_: Iterable[Operation]) -> list[object]:
    seen: list[object] = []
    for op in ops_:
        candidates = [op.query, op.body, *(r.schema for r in op.responses.values())]
        candidates += list(op.path.values())
        seen.extend(t for t in candidates if t is not None and t not in seen)
    return seen


def _operation(
    canonical: str, op: Operation, schema_of: Mapping[Any, Any], components: Mapping[str, Any]
) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": schema_of[op.path[name]] if name in op.path else {"type": "string"},
        }
        for name in _PATH_PARAMETER.findall(canonical)
    ]
    if op.query is not None:
        # The native routes' query values are read strictly (api/native.py, query_params).
        native = op.security is NATIVE_KEY
        parameters += _query_parameters(op.query, schema_of[op.query], components, native=native)
    parameters += [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": spec if isinstance(spec, str) else spec.description,
            "schema": {"type": "string"} if isinstance(spec, str) else dict(spec.schema),
        }
        for name, spec in op.headers.items()
    ]
    doc: dict[str, Any] = {"summary": op.summary, "responses": {}}
    if op.description:
        doc["description"] = op.description
    if op.tags:
        doc["tags"] = list(op.tags)
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {op.body_content_type: {"schema": schema_of[op.body]}},
        }
    doc["security"] = [{op.security.name: []}] if op.security else []
    for status, response in sorted(op.responses.items()):
        entry: dict[str, Any] = {"description": response.description}
        if response.schema is not None:
            entry["content"] = {
                media: {"schema": schema_of[response.schema]}
                for media in (response.content_type, *response.other_content_types)
            }
        doc["responses"][str(status)] = entry
    return doc


# How the native routes read a query value of each kind (api/native.py, query_params).
_QUERY_KIND_WORDS: Final[Mapping[QueryKind, str]] = {
    "time": "An RFC 3339 time (`2026-11-22T16:41:46Z`); without an offset, UTC.",
    "whole_number": "ASCII decimal digits only (no sign, fraction or exponent).",
}


def _query_parameters(
    query: type[msgspec.Struct],
    ref: Mapping[str, Any],
    components: Mapping[str, Any],
    *,
    native: bool,
) -> list[dict[str, Any]]:
    # A query Struct's schema is a $ref to its component: one parameter per property.
    schema = components[ref["$ref"].rsplit("/", 1)[1]]
    required = set(schema.get("required", ()))
    kinds = field_kinds(query) if native else {}
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        kind = kinds.get(name)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _date_time(prop) if kind == "time" else prop,
        }
        words = _QUERY_KIND_WORDS[kind] if kind is not None else None
        description = " ".join(d for d in (prop.get("description"), words) if d)
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _date_time(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` with `format: date-time` on its string type (msgspec gives a bare string)."""
    if schema.get("type") == "string":
        return {**schema, "format": "date-time"}
    if "anyOf" in schema:
        return {**schema, "anyOf": [_date_time(member) for member in schema["anyOf"]]}
    return dict(schema)


# --- the route ----------------------------------------------------------------------------------

routes = web.RouteTableDef()


# The document describes routes, not data: it is public, and readable from any origin, so that
# Redoc or Swagger UI served elsewhere can load it (docs/decisions.md, "A public API document").
DOCUMENT: Final = Dialect(
    name="openapi",
    authenticate=no_authentication,
    too_large=body_too_large,
    unexpected=internal_error,
)


@routes.get("/openapi.json")
@DOCUMENT.route
async def openapi_json(request: web.Request, _caller: None) -> web.Response:
    """The document."""
    return json_response(build_document(request.app), headers={"Access-Control-Allow-Origin": "*"})


describe(
    openapi_json,
    Operation(
        summary="This OpenAPI document (no key needed; any origin may read it)",
        tags=("ops",),
        responses={200: Response("OpenAPI 3.1 document", dict[str, Any])},
    ),
)
describe(
    ops.healthz,
    Operation(
        summary="Liveness: the process serves HTTP",
        tags=("ops",),
        responses={200: Response("Up", Health)},
    ),
)
describe(
    docs_page.docs,
    Operation(
        summary="This document, rendered by Redoc (shipped with lead-ledger; works offline)",
        tags=("ops",),
        responses={200: Response("An HTML page", str, "text/html")},
    ),
)
describe(
    docs_page.redoc_bundle,
    Operation(
        summary="Redoc's standalone bundle, which /docs loads",
        tags=("ops",),
        responses={200: Response("JavaScript", str, "text/javascript")},
    ),
)
describe(
    metrics.metrics,
    Operation(
        summary="Prometheus metrics of this process and of the database (docs/operations.md)",
        tags=("ops",),
        responses={200: Response("Prometheus text exposition format", str, "text/plain")},
    ),
)
describe(
    ops.readyz,
    Operation(
        summary="Readiness: the database answers within 2 s",
        tags=("ops",),
        responses={200: Response("Ready", Health), 503: Response("Not ready", Health)},
    ),
)
