"""`POST /v1/erasures` and `GET /v1/erasures/{id}`: erase a person, and read the record of it
(native key, account-scoped, problem+json; docs/erasure.md)."""

from __future__ import annotations

import json

import msgspec
from aiohttp import web

from lead_ledger.api import openapi
from lead_ledger.api.auth import Principal
from lead_ledger.api.edge import Refused, context, json_response
from lead_ledger.api.keys import POOL
from lead_ledger.api.native import NATIVE, NoQuery, query_params
from lead_ledger.api.openapi import BAD_REQUEST, UNAUTHORIZED, Response, problem_response
from lead_ledger.api.problems import invalid_body, problem, validation_problem
from lead_ledger.service import erasures
from lead_ledger.service.inputs import BIGINT_MAX, NUL, decode_json

routes = web.RouteTableDef()


class ErasureBody(erasures.ErasureRequest, frozen=True, kw_only=True):
    """Exactly one of: `phone` (any spelling), `lead_id`, `user_data`."""


@routes.post("/v1/erasures")
@openapi.operation(
    summary="Erase a person: every subject a phone number, lead id or user_data names",
    description=(
        "Erases, in every campaign of the account, the live, archived and deleted leads and the"
        " refused and rejected rows that the value names: their keys are destroyed, so what the"
        " log holds of them reads as erased, and the views drop them. The answer counts the"
        " subjects and lists the lead ids; the request itself is kept only as a keyed digest."
    ),
    tags=("native",),
    security=openapi.NATIVE_KEY,
    body=ErasureBody,
    responses={
        200: Response("The erasure", erasures.Erasure),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
    },
)
@NATIVE.route
async def erase(request: web.Request, principal: Principal) -> web.StreamResponse:
    asked = await _asked(request)
    async with request.app[POOL].acquire() as conn:
        erasure = await erasures.erase(
            conn, context(request, principal), principal.account_id, asked
        )
    return json_response(erasure)


@routes.post("/v1/erasures/preview")
@openapi.operation(
    summary="What an erasure would take now, without erasing anything",
    description=(
        "The same body as `POST /v1/erasures`; the answer counts the subjects it names now and"
        " lists their lead ids and rejected rows. Nothing is erased, no event recorded. An erasure"
        " asked for afterwards reads them again: a write in between may add a row."
    ),
    tags=("native",),
    security=openapi.NATIVE_KEY,
    body=ErasureBody,
    responses={
        200: Response("What the erasure would take", erasures.ErasurePreview),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
    },
)
@NATIVE.route
async def preview(request: web.Request, principal: Principal) -> web.StreamResponse:
    asked = await _asked(request)
    async with request.app[POOL].acquire() as conn:
        found = await erasures.preview(conn, principal.account_id, asked)
    return json_response(found)


async def _asked(request: web.Request) -> ErasureBody:
    """The request's body, checked: it names exactly one person's value (else 400)."""
    query_params(request, NoQuery)
    body = await request.read()
    try:
        asked = decode_json(body, lambda data: msgspec.json.decode(data, type=ErasureBody))
        _each_key_once(body)
        asked.given()
    except msgspec.DecodeError as error:  # also ValidationError: malformed or mistyped
        raise Refused(validation_problem(error)) from error
    except erasures.ErasureRequestError as error:
        raise Refused(invalid_body(str(error), field=error.field)) from error
    if asked.lead_id is not None and not 1 <= asked.lead_id <= BIGINT_MAX:
        raise Refused(invalid_body("lead_id is not a lead id", field="lead_id"))
    for name in ("phone", "user_data"):
        if NUL in (getattr(asked, name) or ""):
            raise Refused(invalid_body(f"{name} holds a NUL character", field=name))
    return asked


def _each_key_once(body: bytes) -> None:
    """An erasure cannot be undone: a body naming a field twice (`{"phone": A, "phone": B}`,
    which JSON readers take as the last) is refused rather than read one way or the other."""

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        names = [name for name, _ in items]
        for name in names:
            if names.count(name) > 1:
                raise erasures.ErasureRequestError(f"{name} is given twice", name)
        return dict(items)

    json.loads(body, object_pairs_hook=pairs)


@routes.get("/v1/erasures/{id}")
@openapi.operation(
    summary="The record of an erasure: who erased how many subjects, when",
    tags=("native",),
    security=openapi.NATIVE_KEY,
    path={"id": str},
    responses={
        200: Response("The erasure", erasures.Erasure),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: problem_response("No such erasure in this account"),
    },
)
@NATIVE.route
async def show_erasure(request: web.Request, principal: Principal) -> web.StreamResponse:
    erasure_id = request.match_info["id"]
    query_params(request, NoQuery)
    async with request.app[POOL].acquire() as conn:
        erasure = await erasures.find_erasure(conn, principal.account_id, erasure_id)
    if erasure is None:
        return problem(404, "no such erasure in this account")
    return json_response(erasure)
