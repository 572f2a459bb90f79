"""Typed application state (aiohttp AppKeys): no module-level singletons."""

from __future__ import annotations

from typing import Final

import asyncpg
from aiohttp import web

from lead_ledger.settings import Settings

SETTINGS: Final = web.AppKey("settings", Settings)
DATABASE_URL: Final = web.AppKey("database_url", str)
POOL: Final = web.AppKey("pool", asyncpg.Pool)
