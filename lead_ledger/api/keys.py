"""Typed application state (aiohttp AppKeys): no module-level singletons."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

import asyncpg
from aiohttp import web

from lead_ledger.service.account_groups import AccountGroups
from lead_ledger.service.file_parser import FileParser
from lead_ledger.service.jobs import JobKinds
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.service.login_throttle import SharedChecks
from lead_ledger.service.ozonetel_adds import AddCampaignDataGroups
from lead_ledger.service.vicidial_add_lead import Request as VicidialAdd
from lead_ledger.service.vicidial_login import VerifiedLogins
from lead_ledger.service.writer import Context
from lead_ledger.settings import Settings

SETTINGS: Final = web.AppKey("settings", Settings)
DATABASE_URL: Final = web.AppKey("database_url", str)
# The owner's URL, which migrates at start; None: the service's own URL migrates (one role).
MIGRATION_DATABASE_URL: Final[web.AppKey[str | None]] = web.AppKey("migration_database_url")
POOL: Final = web.AppKey("pool", asyncpg.Pool)
# A streaming replica's pool for the native reads (LEDGER_READ_DATABASE_URL; api/read_routing.py).
READ_POOL: Final = web.AppKey("read_pool", asyncpg.Pool)
# The time, as the handlers see it: injectable so office hours and expiry checks are testable.
CLOCK: Final[web.AppKey[Callable[[], datetime]]] = web.AppKey("clock")
# Ozonetel's AddCampaignData, checked and written in groups per API key within this process
# (service/ozonetel_adds.py).
OZONETEL_ADDS: Final = web.AppKey("ozonetel_adds", AddCampaignDataGroups)
# The phone key workers, alive as long as the app (docs/decisions.md, "The app owns its job kinds
# and key workers"), and what the app's job worker runs (service/job_kinds.py), bound to them.
KEY_WORKERS: Final = web.AppKey("key_workers", KeyWorkers)
JOB_KINDS: Final[web.AppKey[JobKinds]] = web.AppKey("job_kinds")
# Parses uploaded files in a worker process with a memory limit (service/file_parser.py).
FILE_PARSER: Final = web.AppKey("file_parser", FileParser)
# Vicidial non-agent logins that succeeded of late (service/vicidial_login.py).
VICIDIAL_LOGINS: Final = web.AppKey("vicidial_logins", VerifiedLogins)
# Logins with the same username and password in flight share one check (every dialect's).
LOGIN_CHECKS: Final = web.AppKey("login_checks", SharedChecks)
# Vicidial add_lead calls, decided in groups per account (service/vicidial_add_lead.py).
VICIDIAL_ADDS: Final[web.AppKey[AccountGroups[int, tuple[Context, VicidialAdd], list[str]]]] = (
    web.AppKey("vicidial_adds")
)
