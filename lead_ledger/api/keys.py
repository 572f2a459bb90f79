"""Typed application state (aiohttp AppKeys): no module-level singletons."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

import asyncpg
from aiohttp import web

from lead_ledger.service.lead_batcher import LeadInsertBatcher
from lead_ledger.settings import Settings

SETTINGS: Final = web.AppKey("settings", Settings)
DATABASE_URL: Final = web.AppKey("database_url", str)
POOL: Final = web.AppKey("pool", asyncpg.Pool)
# The time, as the handlers see it: injectable so office hours and expiry checks are testable.
CLOCK: Final[web.AppKey[Callable[[], datetime]]] = web.AppKey("clock")
# Groups single-lead inserts per campaign within this process (service/lead_batcher.py).
LEAD_BATCHER: Final = web.AppKey("lead_batcher", LeadInsertBatcher)
