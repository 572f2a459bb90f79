"""Small helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TypeAlias

from aiohttp import web
from aiohttp.test_utils import TestClient

Client: TypeAlias = TestClient[web.Request, web.Application]


async def fresh_minute() -> None:
    """Wait out the last seconds of a minute: the rate limits count fixed one-minute windows, so
    a test that fills one must not straddle two."""
    second = datetime.now(UTC).second
    if second >= 55:
        await asyncio.sleep(61 - second)
