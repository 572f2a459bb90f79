"""Following the global feed: read below the visibility fence, wake on NOTIFY, poll as backstop."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Final

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import RecordedEvent
from lead_ledger.ledger.store import read_feed

CHANNEL: Final = "ledger_events"
# NOTIFY arrives when a writer commits, but the fence may still hold its events back behind an
# older transaction that writes no event (and so sends no NOTIFY); polling covers that case.
POLL_SECONDS: Final = 1.0


class FeedEntry(msgspec.Struct, frozen=True, kw_only=True):
    """An event as the feed shows it: the body and metadata embedded as JSON, not as strings."""

    position: int
    event_id: uuid.UUID
    stream_id: str
    stream_version: int
    type: str
    schema_version: int
    recorded_at: datetime
    data: msgspec.Raw
    metadata: msgspec.Raw


def feed_entry(event: RecordedEvent) -> FeedEntry:
    return FeedEntry(
        position=event.position,
        event_id=event.event_id,
        stream_id=event.stream_id,
        stream_version=event.stream_version,
        type=event.type,
        schema_version=event.schema_version,
        recorded_at=event.recorded_at,
        data=msgspec.Raw(event.data),
        metadata=msgspec.Raw(event.metadata),
    )


async def follow_feed(
    conn: Connection,
    *,
    after: int = 0,
    account_id: int | None = None,
    batch_size: int = 1000,
    follow: bool = True,
) -> AsyncGenerator[RecordedEvent, None]:
    """Yield every committed event after `after`, exactly once; keep following if asked.

    Iterate it inside `contextlib.aclosing` when you may stop early, so the listener is removed
    before the connection is released.
    """
    woken = asyncio.Event()

    def _wake(*_args: object) -> None:
        woken.set()

    if follow:
        await conn.add_listener(CHANNEL, _wake)
    try:
        while True:
            woken.clear()
            batch = await read_feed(conn, after=after, limit=batch_size, account_id=account_id)
            for event in batch:
                yield event
                after = event.position
            if len(batch) == batch_size:
                continue
            if not follow:
                return
            try:
                async with asyncio.timeout(POLL_SECONDS):
                    await woken.wait()
            except TimeoutError:
                pass
    finally:
        if follow:
            # A connection the database dropped is closed, or detached from its pool's proxy
            # (which then refuses every call): its listener went with it.
            with contextlib.suppress(asyncpg.InterfaceError):
                if not conn.is_closed():
                    await conn.remove_listener(CHANNEL, _wake)
