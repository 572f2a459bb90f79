"""The aiohttp application: `create_app(settings, database_url)`, nothing global."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from aiohttp import web

from lead_ledger.api import (
    admin,
    dnc,
    docs_page,
    erasures,
    exports,
    flexydial,
    flexydial_dnc,
    jobs,
    jtel,
    metrics,
    native,
    openapi,
    ops,
    ozonetel_add,
    ozonetel_bulk,
    ozonetel_delete,
    ozonetel_v4,
    read_routing,
    subscriptions,
    unmatched,
    vicidial,
    vicidial_non_agent,
)
from lead_ledger.api.http_logs import keep_requests_out_of_server_logs
from lead_ledger.api.keys import (
    CLOCK,
    DATABASE_URL,
    FILE_PARSER,
    JOB_KINDS,
    KEY_WORKERS,
    LOGIN_CHECKS,
    MIGRATION_DATABASE_URL,
    OZONETEL_ADDS,
    POOL,
    READ_POOL,
    SETTINGS,
    VICIDIAL_ADDS,
    VICIDIAL_LOGINS,
)
from lead_ledger.api.middleware import request_context
from lead_ledger.ledger import key_store, subject_keys
from lead_ledger.ledger.database import create_pool, open_database
from lead_ledger.service.export_parallel import ExportWorkers
from lead_ledger.service.file_parser import FileParser
from lead_ledger.service.job_kinds import job_kinds
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.service.login_throttle import SharedChecks
from lead_ledger.service.ozonetel_adds import AddCampaignDataGroups
from lead_ledger.service.replica import Replica
from lead_ledger.service.vicidial_add_lead import vicidial_adds
from lead_ledger.service.vicidial_login import VerifiedLogins
from lead_ledger.settings import Settings


def _key_workers(*, warm: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    """The app's phone key workers, alive exactly as long as the app: the job kinds and the
    insert batcher compute large batches' keys in them. Warm, they start with the app."""

    async def owned(app: web.Application) -> AsyncIterator[None]:
        with KeyWorkers() as key_workers:
            if warm:
                key_workers.warm()
            app[KEY_WORKERS] = key_workers
            yield

    return owned


async def _file_parser(app: web.Application) -> AsyncIterator[None]:
    """The upload parser's worker process starts with the first upload, not with the app."""
    settings = app[SETTINGS]
    with FileParser(
        memory_bytes=settings.parser_memory_bytes,
        timeout_seconds=settings.parser_timeout_seconds,
    ) as parser:
        app[FILE_PARSER] = parser
        yield


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not key_store.has_master_key():
        key_store.use_master_key(
            subject_keys.master_key_from(settings.master_key, settings.data_dir)
        )
    pool = await open_database(
        app[DATABASE_URL],
        migration_url=app[MIGRATION_DATABASE_URL],
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        session_state=False,
        store_canary=True,
        upgrade=True,
    )
    app[POOL] = pool
    replica = None
    if settings.read_database_url is not None:
        # A replica is read only: no migration, no role check (it is the primary's roles). Its
        # pool connects when first used, not now: a replica that is down when the server starts
        # leaves its reads to the primary (api/read_routing.py), as one that goes down later.
        app[READ_POOL] = await create_pool(
            settings.read_database_url,
            min_size=0,
            max_size=settings.db_pool_max,
            session_state=False,
        )
        replica = Replica(app[READ_POOL], settings.read_database_url, settings.read_wait_seconds)
    # Bound to the key workers, and for exports to their worker processes and the replica.
    app[JOB_KINDS] = job_kinds(
        app[KEY_WORKERS], ExportWorkers.of(settings, app[DATABASE_URL]), replica
    )
    app[OZONETEL_ADDS] = AddCampaignDataGroups(pool)
    app[VICIDIAL_ADDS] = vicidial_adds(pool)
    yield
    await app[VICIDIAL_ADDS].close()
    await app[OZONETEL_ADDS].close()
    if READ_POOL in app:
        await app[READ_POOL].close()
    await pool.close()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings,
    database_url: str,
    *,
    migration_url: str | None = None,
    warm_key_workers: bool = False,
) -> web.Application:
    """Build the app; the pool opens (and migrations run, as `migration_url`'s role when given)
    when the app starts, and so do the phone key workers with `warm_key_workers` (`serve`),
    else with the first large batch."""
    keep_requests_out_of_server_logs()
    # Metrics outermost: they count the answer request_context made of any failure.
    app = web.Application(
        middlewares=[metrics.observe_requests, request_context, unmatched.unmatched_routes],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[DATABASE_URL] = database_url
    app[MIGRATION_DATABASE_URL] = migration_url
    app[CLOCK] = _utc_now
    app[VICIDIAL_LOGINS] = VerifiedLogins()
    app[LOGIN_CHECKS] = SharedChecks()
    # First in, last out: the key workers outlive the pool's users and the job worker.
    app.cleanup_ctx.append(_key_workers(warm=warm_key_workers))
    app.cleanup_ctx.append(_file_parser)
    app.cleanup_ctx.append(_database)
    app.add_routes(ops.routes)
    metrics.setup(app)  # GET /metrics
    app.add_routes(admin.routes)
    native.setup(app)  # native routes, and an on_shutdown hook that ends open SSE streams
    read_routing.setup(app)  # X-Ledger-Read-From on the reads a replica may serve
    app.add_routes(erasures.routes)
    exports.setup(app)  # routes, and the sweep of files past their retention
    app.add_routes(dnc.routes)
    app.add_routes(flexydial_dnc.routes)
    app.add_routes(ozonetel_add.routes)
    app.add_routes(ozonetel_delete.routes)
    app.add_routes(jtel.routes)
    app.add_routes(vicidial.routes)
    app.add_routes(vicidial_non_agent.routes)
    app.add_routes(flexydial.routes)
    app.add_routes(ozonetel_bulk.routes)
    app.add_routes(ozonetel_v4.routes)
    jobs.setup(app)  # GET /v1/jobs/{id}, and the job worker and callback dispatcher tasks
    subscriptions.setup(app)  # /v1/subscriptions, and the delivery task (after the pool opens)
    app.add_routes(openapi.routes)
    app.add_routes(docs_page.routes)  # GET /docs
    return app
