"""The one way events are written: append, then update every inline projection, in the
caller's transaction, so a request reads its own writes and duplicate checks see every commit."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import Actor, EventMetadata, StreamAppend
from lead_ledger.ledger.event_ids import new_event_id
from lead_ledger.ledger.events import DomainEvent, encode_event
from lead_ledger.ledger.store import AppendResult, append_events
from lead_ledger.projections.registry import apply_inline
from lead_ledger.service.transactions import APPENDED_TYPES


class Origin(msgspec.Struct, frozen=True, kw_only=True):
    """Where a request came from, before anyone knows who sent it (a vendor's own checks may
    authenticate the caller later, in their order)."""

    request_id: str | None = None
    client_address: str | None = None

    def context(self, actor: Actor) -> Context:
        return Context(actor=actor, request_id=self.request_id, client_address=self.client_address)


class Context(msgspec.Struct, frozen=True, kw_only=True):
    """Who is asking and through what: becomes every written event's metadata."""

    actor: Actor
    request_id: str | None = None
    job_id: str | None = None
    correlation_id: str | None = None
    client_address: str | None = None

    def metadata(self) -> EventMetadata:
        return EventMetadata(
            actor=self.actor,
            request_id=self.request_id,
            job_id=self.job_id,
            correlation_id=self.correlation_id or self.request_id,
            client_address=self.client_address,
        )


def stream_append(
    ctx: Context,
    stream_id: str,
    expected_version: int,
    events: Sequence[DomainEvent],
    *,
    account_id: int | None,
) -> StreamAppend:
    """Encode domain events for one stream. Event ids are drawn here (UUIDv7, time-ordered with
    random bits), never in the domain."""
    return StreamAppend(
        stream_id=stream_id,
        expected_version=expected_version,
        events=[encode_event(event, new_event_id()) for event in events],
        metadata=ctx.metadata(),
        account_id=account_id,
    )


async def record(
    conn: Connection, appends: Sequence[StreamAppend], *, detect_retries: bool = False
) -> AppendResult:
    """Append and project. Must run inside the caller's transaction (and its locks), which
    should be a `service.transactions.write_transaction` so that it holds the write gate.

    `stream_append` gives every event a fresh id (UUIDv7), so such appends cannot be retries;
    pass `detect_retries=True` only for events with ids derived from something replayable.
    """
    if not conn.is_in_transaction():
        raise RuntimeError("record() must run inside a transaction")
    result = await append_events(conn, appends, detect_retries=detect_retries)
    if not result.already_stored:
        await apply_inline(conn, result.events)
        counted = APPENDED_TYPES.get()
        if counted is not None:
            counted.extend(event.type for event in result.events)
    return result
