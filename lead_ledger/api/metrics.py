"""`GET /metrics` for Prometheus, and the middleware that counts and times every request.

Each process answers with its own counters (`lead_ledger.metrics`, prometheus-client's default
registry) and with gauges read from the database at scrape time, in a registry of the app's own:
the job queue, pending callbacks, the log's head and projection lag, and this process's pool.
No label holds a raw path: an unrouted request is counted under `route="unmatched"`, so a
scanner trying a million URLs cannot grow the metrics without bound.
"""

from __future__ import annotations

import time
from typing import Final

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import REGISTRY, CollectorRegistry, Gauge
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from lead_ledger.api.keys import POOL
from lead_ledger.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS
from lead_ledger.projections.rebuild.swap import SELECT_HEAD
from lead_ledger.projections.registry import PROJECTIONS

routes = web.RouteTableDef()

UNMATCHED: Final = "unmatched"
# Only jobs not yet finished: the index on claimable jobs covers exactly these rows.
SELECT_QUEUE: Final = """
SELECT state, count(*) AS jobs FROM job_queue WHERE state IN ('queued', 'running') GROUP BY state
"""
SELECT_PENDING_CALLBACKS: Final = """
SELECT count(*) FROM callback_outbox WHERE delivered_at IS NULL AND abandoned_at IS NULL
"""


class DatabaseGauges:
    """Gauges of what the database holds, set at each scrape; one set per app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.queue = Gauge(
            "lead_ledger_job_queue_jobs",
            "Jobs waiting for a worker (queued) or being run (running)",
            ["state"],
            registry=self.registry,
        )
        self.callbacks = Gauge(
            "lead_ledger_callbacks_pending",
            "Callbacks neither delivered nor abandoned yet",
            registry=self.registry,
        )
        self.head = Gauge(
            "lead_ledger_log_head_position",
            "The highest position in the event log",
            registry=self.registry,
        )
        # Inline projections commit in their events' transaction: they are never behind (0).
        # Kept per projection so a dashboard needs no change if one ever becomes asynchronous.
        self.lag = Gauge(
            "lead_ledger_projection_lag_events",
            "Events in the log that a projection has not applied yet",
            ["projection"],
            registry=self.registry,
        )
        self.pool = Gauge(
            "lead_ledger_db_pool_connections",
            "This process's database connections: open (size), idle, and the pool's maximum",
            ["state"],
            registry=self.registry,
        )

    async def read(self, pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            queue = {row["state"]: row["jobs"] for row in await conn.fetch(SELECT_QUEUE)}
            pending: int = await conn.fetchval(SELECT_PENDING_CALLBACKS)
            head: int = await conn.fetchval(SELECT_HEAD)
        for state in ("queued", "running"):
            self.queue.labels(state).set(queue.get(state, 0))
        self.callbacks.set(pending)
        self.head.set(head)
        for projection in PROJECTIONS:
            self.lag.labels(projection.name).set(0)
        # Read after the queries above gave their connection back.
        self.pool.labels("size").set(pool.get_size())
        self.pool.labels("idle").set(pool.get_idle_size())
        self.pool.labels("max").set(pool.get_max_size())


DATABASE_GAUGES: Final = web.AppKey("database_gauges", DatabaseGauges)


def setup(app: web.Application) -> None:
    app[DATABASE_GAUGES] = DatabaseGauges()
    app.add_routes(routes)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format: this process's counters, then the database's gauges."""
    gauges = request.app[DATABASE_GAUGES]
    await gauges.read(request.app[POOL])
    body = generate_latest(REGISTRY) + generate_latest(gauges.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def observe_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request by its route template, method and status."""
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as http_error:
        _observe(request, http_error.status, started)
        raise
    except BaseException:
        _observe(request, 499, started)  # the client went away (the request log's convention)
        raise
    _observe(request, response.status, started)
    return response


def _observe(request: web.Request, status: int, started: float) -> None:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else UNMATCHED
    HTTP_REQUESTS.labels(route, request.method, str(status)).inc()
    HTTP_REQUEST_SECONDS.labels(route, request.method).observe(time.perf_counter() - started)
