"""Exports: `POST /v1/exports`, `GET /v1/exports/{id}`, `GET /v1/exports/{id}/file` (native key,
account-scoped, problem+json; docs/exports.md), and the sweep that removes files past their
retention while the app runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec
import structlog
from aiohttp import web

from lead_ledger.api import openapi
from lead_ledger.api.auth import Principal
from lead_ledger.api.edge import Refused, context, json_response, request_id_header
from lead_ledger.api.keys import CLOCK, POOL, SETTINGS
from lead_ledger.api.native import NATIVE, NoQuery, query_params
from lead_ledger.api.openapi import BAD_REQUEST, UNAUTHORIZED, Response, problem_response
from lead_ledger.api.ozonetel_v4 import links_base
from lead_ledger.api.problems import problem, time_problem, validation_problem
from lead_ledger.ledger.connection import Connection
from lead_ledger.service import exports
from lead_ledger.service.export_files import CONTENT_TYPES, EXPORTABLE
from lead_ledger.service.inputs import NUL, decimal, decode_json, shown
from lead_ledger.service.reads import UnknownCampaignError
from lead_ledger.service.worker import DATABASE_UNAVAILABLE
from lead_ledger.service.writer import Context

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()
SWEEP_SECONDS: Final = 60.0
# As a file is served: a csv is written as UTF-8 (as rejected.csv says), which its stored type
# does not name.
_SERVED_TYPES: Final = {CONTENT_TYPES["csv"]: f"{CONTENT_TYPES['csv']}; charset=utf-8"}


def setup(app: web.Application) -> None:
    app.add_routes(routes)
    app.cleanup_ctx.append(_sweeper)


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    """Remove expired files once a minute while the app runs (any process may: each file is
    taken by one sweeper, under its row lock)."""
    retention = timedelta(hours=app[SETTINGS].export_retention_hours)

    async def sweep_forever() -> None:
        while True:
            try:
                async with app[POOL].acquire() as conn:
                    await exports.sweep_expired(conn, datetime.now(UTC), retention)
            except DATABASE_UNAVAILABLE as error:
                log.warning("export_sweep_failed", error=type(error).__name__)
            except Exception:  # the sweep must outlive a failed round
                log.exception("export_sweep_failed")
            await asyncio.sleep(SWEEP_SECONDS)

    task = asyncio.create_task(sweep_forever())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _retention(request: web.Request) -> timedelta:
    return timedelta(hours=request.app[SETTINGS].export_retention_hours)


def _export_id(request: web.Request) -> int | None:
    return decimal(request.match_info["id"], minimum=1)


async def _view(
    request: web.Request, conn: Connection, account_id: int, export_id: int
) -> exports.ExportView | None:
    return await exports.export_view(
        conn, account_id, export_id, retention=_retention(request), base=links_base(request)
    )


@routes.post("/v1/exports")
@openapi.operation(
    summary="Export a campaign's leads, now or as they stood at a time, as csv, xlsx or jsonl",
    description=(
        "Queued as a job: follow it with `GET /v1/exports/{id}`, then download the file from"
        " its `download_url`. `as_of` folds every lead from the log as it stood then (a lead"
        " updated since shows its old values, one deleted since is there, one inserted since"
        " is not). csv and xlsx cells that a spreadsheet would run as formulas are escaped. The"
        " file is kept for LEDGER_EXPORT_RETENTION_HOURS. See docs/exports.md."
    ),
    tags=("native",),
    security=openapi.NATIVE_KEY,
    body=exports.ExportRequest,
    responses={
        202: Response("Queued", exports.ExportView),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: problem_response("The campaign names no campaign of this account"),
        429: problem_response("The account has MAX_EXPORTS_IN_PROGRESS (8) exports in progress"),
    },
)
@NATIVE.route
async def create_export(request: web.Request, principal: Principal) -> web.StreamResponse:
    query_params(request, NoQuery)
    body = await request.read()
    try:
        asked = decode_json(
            body, lambda data: msgspec.json.decode(data, type=exports.ExportRequest)
        )
    except msgspec.DecodeError as error:  # also ValidationError: malformed or mistyped
        raise Refused(validation_problem(error)) from error
    beyond = time_problem(asked)
    if beyond is not None:
        return beyond
    if asked.as_of is not None and asked.as_of.tzinfo is None:
        asked = msgspec.structs.replace(asked, as_of=asked.as_of.replace(tzinfo=UTC))
    if asked.campaign is not None and NUL in asked.campaign:
        # No campaign's name holds NUL (PostgreSQL text cannot): like any other unknown name.
        return problem(404, f"no campaign {shown(asked.campaign)!r}", field="campaign")
    if exports.in_the_future(asked.as_of, request.app[CLOCK]()):
        raise Refused(problem(400, f"as_of {exports.IN_THE_FUTURE}", field="as_of"))
    async with request.app[POOL].acquire() as conn:
        export_id = await _submitted(conn, context(request, principal), principal, asked)
        view = await _view(request, conn, principal.account_id, export_id)
    return json_response(view, 202)


async def _submitted(
    conn: Connection, ctx: Context, principal: Principal, asked: exports.ExportRequest
) -> int:
    """The export's id once queued; Refused with the problem that names what stops it."""
    try:
        return await exports.submit_export(conn, ctx, principal.account_id, asked)
    except UnknownCampaignError:
        answer = problem(404, f"no campaign {asked.campaign!r}", field="campaign")
    except exports.UnknownFieldError as error:
        answer = problem(
            400,
            f"not exportable fields: {error}; fields are {', '.join(EXPORTABLE)}",
            field="fields",
        )
    except exports.UnusableFieldsError as error:
        answer = problem(400, str(error), field="fields")
    except exports.TooManyExportsError as error:
        answer = problem(429, str(error))
    raise Refused(answer)


@routes.get("/v1/exports/{id}")
@openapi.operation(
    summary="One export: state, rows, timings and, once written, its download_url",
    description=(
        "`state` is queued, running, done, failed, or removed (its file outlived the"
        " retention, or an erasure of the account's leads removed it); `expires_at` is when"
        " the file will be removed."
    ),
    tags=("native",),
    security=openapi.NATIVE_KEY,
    path={"id": int},
    responses={
        200: Response("The export", exports.ExportView),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: problem_response("No such export in this account"),
    },
)
@NATIVE.route
async def show_export(request: web.Request, principal: Principal) -> web.StreamResponse:
    export_id = _export_id(request)
    if export_id is None:
        return problem(404, f"no export {request.match_info['id']}")
    query_params(request, NoQuery)
    async with request.app[POOL].acquire() as conn:
        view = await _view(request, conn, principal.account_id, export_id)
    if view is None:
        return problem(404, f"no export {request.match_info['id']}")
    return json_response(view)


@routes.get("/v1/exports/{id}/file")
@openapi.operation(
    summary="The export's file, streamed (Content-Disposition: attachment)",
    tags=("native",),
    security=openapi.NATIVE_KEY,
    path={"id": int},
    responses={
        200: Response(
            "The file (csv, xlsx or jsonl)",
            str,
            content_type=CONTENT_TYPES["csv"],
            other_content_types=(CONTENT_TYPES["xlsx"], CONTENT_TYPES["jsonl"]),
        ),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: problem_response("No such export, not written yet, or removed"),
    },
)
@NATIVE.route
async def download_export(request: web.Request, principal: Principal) -> web.StreamResponse:
    export_id = _export_id(request)
    if export_id is None:
        return problem(404, f"no export {request.match_info['id']}")
    query_params(request, NoQuery)
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        stored = await exports.file_of(conn, principal.account_id, export_id)
    if stored is None:
        return problem(404, f"export {export_id} has no file (not written yet, or removed)")
    response = web.StreamResponse(
        headers={
            "Content-Type": _SERVED_TYPES.get(stored.content_type, stored.content_type),
            "Content-Disposition": f'attachment; filename="{stored.file_name}"',
            **request_id_header(request),
        }
    )
    response.content_length = stored.bytes
    await response.prepare(request)
    sent = 0
    async for chunk in exports.file_chunks(pool, export_id, stored.chunks):
        await response.write(chunk)
        sent += 1
    if sent < stored.chunks and request.transport is not None:
        # Removed meanwhile (the retention sweep, an erasure): cut the connection, so that the
        # client sees a short body (its Content-Length unmet) instead of waiting for the rest.
        request.transport.close()
        return response
    await response.write_eof()
    return response
