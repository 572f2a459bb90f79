"""Bulk jobs in the app: the worker and callback dispatcher as background tasks, and
`GET /v1/jobs` and `GET /v1/jobs/{id}` (native key, account-scoped) to find and follow a job."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Final, Literal

import msgspec
import structlog
from aiohttp import web

from lead_ledger.api import openapi
from lead_ledger.api.auth import Principal
from lead_ledger.api.callback_http import callback_session, poster
from lead_ledger.api.edge import json_response
from lead_ledger.api.keys import DATABASE_URL, JOB_KINDS, POOL, SETTINGS
from lead_ledger.api.native import NATIVE, Limit, NoQuery, as_utc, query_params
from lead_ledger.api.openapi import BAD_REQUEST, UNAUTHORIZED, Response, problem_response
from lead_ledger.api.problems import problem
from lead_ledger.service import callbacks, jobs, worker
from lead_ledger.service.inputs import BIGINT_MAX, decimal

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()
STOP_GRACE_SECONDS: Final = 15.0


def setup(app: web.Application) -> None:
    """Register the route, and the background worker and dispatcher (after the pool opens)."""
    app.add_routes(routes)
    app.cleanup_ctx.append(background)


async def background(app: web.Application) -> AsyncIterator[None]:
    """Run LEDGER_JOB_WORKERS job workers and one callback dispatcher while the app runs; on
    shutdown, stop them: a job in flight rolls back and its lease is released for the next
    worker."""
    pool = app[POOL]
    listen_url = app[DATABASE_URL]  # listeners on their own connections, not the pool's
    stop = asyncio.Event()
    process_id = f"{socket.gethostname()}:{os.getpid()}:{id(app):x}"
    settings = app[SETTINGS]
    allow_private = settings.callback_allow_private
    async with callback_session(allow_private=allow_private) as session:
        # Several jobs at once: while one waits on PostgreSQL (its COPY, its commit), another
        # decodes, checks and seals its rows. Jobs of one campaign still run in turn.
        tasks = [
            asyncio.create_task(
                worker.run_worker(
                    pool,
                    stop,
                    kinds=app[JOB_KINDS],
                    worker_id=f"{process_id}:{n}",
                    lease_seconds=settings.job_lease_seconds,
                    listen_url=listen_url,
                )
            )
            for n in range(settings.job_workers)
        ]
        tasks.append(
            asyncio.create_task(
                callbacks.run_dispatcher(
                    pool,
                    stop,
                    poster(session),
                    allow_private=allow_private,
                    listen_url=listen_url,
                )
            )
        )
        try:
            yield
        finally:
            stop.set()
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
            for task in pending:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


class JobsParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    dialect: str | None = None
    campaign: str | None = None  # a campaign name
    state: Literal["queued", "running", "done", "failed"] | None = None
    from_: datetime | None = msgspec.field(name="from", default=None)  # submitted at or after
    to: datetime | None = None  # submitted before
    before: Annotated[int, msgspec.Meta(ge=1, le=BIGINT_MAX)] | None = None
    # The uploader's own reference: Ozonetel bulk V4's transactionId, Flexydial's phonebook.
    transaction_id: str | None = None
    upload_ref: str | None = None
    limit: Limit = 100


@routes.get("/v1/jobs")
@openapi.operation(
    summary="The account's bulk jobs, newest first, filtered",
    description=(
        "Every upload that was accepted is a job (Flexydial bulk, Ozonetel file, native jobs):"
        " find yours by dialect, campaign, state, submission time or reference (`transaction_id`:"
        " Ozonetel bulk V4's transactionId; `upload_ref`, its other name, also Flexydial's"
        " phonebook name), then follow it with `GET /v1/jobs/{id}`. Keyset paging: pass"
        " `next_before` back as `before` until it is null. A time without an offset is UTC."
        " Rejected rows are listed by the single job."
    ),
    tags=("native",),
    security=openapi.NATIVE_KEY,
    query=JobsParams,
    responses={
        200: Response("A page of jobs", jobs.JobPage),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: problem_response("The campaign filter names no campaign of this account"),
    },
)
@NATIVE.route
async def list_jobs(request: web.Request, principal: Principal) -> web.StreamResponse:
    params = query_params(request, JobsParams)
    reference = params.transaction_id or params.upload_ref
    if params.transaction_id and params.upload_ref and params.transaction_id != params.upload_ref:
        return problem(
            400,
            "transaction_id and upload_ref name the same reference: give one",
            parameter="upload_ref",
        )
    query = jobs.JobsQuery(
        dialect=params.dialect,
        campaign=params.campaign,
        state=params.state,
        from_=as_utc(params.from_),
        to=as_utc(params.to),
        before=params.before,
        upload_ref=reference,
        limit=params.limit,
    )
    async with request.app[POOL].acquire() as conn:
        try:
            page = await jobs.list_jobs(conn, principal.account_id, query)
        except jobs.UnknownCampaignError:
            return problem(404, f"no campaign {params.campaign!r}", parameter="campaign")
    return json_response(page)


@routes.get("/v1/jobs/{id}")
@openapi.operation(
    summary="One bulk job: state, counts, rejected rows, timings and callback attempts",
    description=(
        "`state` is queued, running, done or failed. `counts.rejected` rows are listed with"
        " their 1-based row number and the reason; `callback` is null without a callback URL."
    ),
    tags=("native",),
    security=openapi.NATIVE_KEY,
    path={"id": int},
    responses={
        200: Response("The job", jobs.JobView),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: problem_response("No such job in this account"),
    },
)
@NATIVE.route
async def get_job(request: web.Request, principal: Principal) -> web.StreamResponse:
    text = request.match_info["id"]
    job_id = decimal(text, minimum=1)
    if job_id is None:
        return problem(404, f"no job {text}")
    query_params(request, NoQuery)
    async with request.app[POOL].acquire() as conn:
        job = await jobs.get_job(conn, principal.account_id, job_id)
    if job is None:
        return problem(404, f"no job {text}")
    return json_response(job)


@routes.get("/v1/jobs/{id}/rejected.csv")
@openapi.operation(
    summary="A job's refused rows as csv: row number, the cells as sent, the reason",
    description=(
        "What Ozonetel bulk V4's callback links as failedFilePath; any job's rejected rows read"
        " so. Columns: `row_number`, every cell name the rows have (in the upload's order),"
        " `reason`. A cell a spreadsheet would run as a formula starts with `'`; an erased"
        " row's cells are blank. Empty (the header only) until the job is done."
    ),
    tags=("native",),
    security=openapi.NATIVE_KEY,
    path={"id": int},
    responses={
        200: Response("The csv file", str, content_type="text/csv"),
        400: BAD_REQUEST,
        401: UNAUTHORIZED,
        404: problem_response("No such job in this account"),
    },
)
@NATIVE.route
async def rejected_csv(request: web.Request, principal: Principal) -> web.StreamResponse:
    text = request.match_info["id"]
    job_id = decimal(text, minimum=1)
    if job_id is None:
        return problem(404, f"no job {text}")
    query_params(request, NoQuery)
    async with request.app[POOL].acquire() as conn:
        rejected = await jobs.rejected_rows(conn, principal.account_id, job_id)
    if rejected is None:
        return problem(404, f"no job {text}")
    return web.Response(
        text=jobs.rejected_csv(*rejected),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="job-{job_id}-rejected.csv"'},
    )
