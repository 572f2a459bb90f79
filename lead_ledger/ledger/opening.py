"""Stored events opened for reading: the keys of their subjects fetched in one query, their
sealed parts opened (ledger/sealing.py), erased subjects' data read as erased.

Two forms: typed pairs for folds (service state, rebuilds), and records whose JSON body and
metadata are the opened ones, for everything that shows events (history, audit, the feed, SSE,
the CLI). In the shown form an erased event carries `"erased": true` and each of its personal
fields reads null.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec

from lead_ledger.ledger import key_store
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.dnc_events import DncNumberAdded
from lead_ledger.ledger.envelope import METADATA_ENCODER, EventMetadata, RecordedEvent
from lead_ledger.ledger.events import DomainEvent, LeadRejected, LeadUpdated, decode_event
from lead_ledger.ledger.job_events import JobCompleted
from lead_ledger.ledger.sealing import (
    PERSONAL_FIELDS,
    Keys,
    open_event,
    open_metadata,
    sealed_subjects,
)

Pair = tuple[RecordedEvent, DomainEvent]
_PERSONAL: Final = frozenset(PERSONAL_FIELDS)
_ENCODER: Final = msgspec.json.Encoder()
_METADATA: Final = msgspec.json.Decoder(EventMetadata)


async def keys_for(conn: Connection, subjects: Iterable[str]) -> Keys:
    wanted = set(subjects)
    if not wanted:
        return {}
    return await key_store.keys_for_reading(conn, key_store.master_key(), wanted)


async def open_pairs(conn: Connection, events: Sequence[RecordedEvent]) -> list[Pair]:
    """Each stored event decoded and opened."""
    decoded = [decode_event(recorded) for recorded in events]
    keys = await keys_for(conn, (s for event in decoded for s in sealed_subjects(event)))
    return [
        (recorded, open_event(event, keys)) for recorded, event in zip(events, decoded, strict=True)
    ]


async def shown_records(conn: Connection, events: Sequence[RecordedEvent]) -> list[RecordedEvent]:
    """The records with their body and metadata opened, as the API and the CLI show them.
    A body that does not decode (a foreign writer's) is shown as stored."""
    decoded: list[DomainEvent | None] = []
    metadata: list[EventMetadata | None] = []
    subjects: set[str] = set()
    for recorded in events:
        event = _decoded(recorded)
        meta = _decoded_metadata(recorded.metadata)
        decoded.append(event)
        metadata.append(meta)
        if event is not None:
            subjects.update(sealed_subjects(event))
        if meta is not None and meta.sealed is not None:
            subjects.add(meta.sealed.subject)
    keys = await keys_for(conn, subjects)
    shown = []
    for recorded, event, meta in zip(events, decoded, metadata, strict=True):
        data, meta_bytes = recorded.data, recorded.metadata
        if event is not None and sealed_subjects(event):  # a job's rejected rows included
            data = shown_body(open_event(event, keys))
        if meta is not None and meta.sealed is not None:
            meta_bytes = METADATA_ENCODER.encode(open_metadata(meta, keys))
        shown.append(msgspec.structs.replace(recorded, data=data, metadata=meta_bytes))
    return shown


def _decoded(recorded: RecordedEvent) -> DomainEvent | None:
    try:
        return decode_event(recorded)
    except msgspec.DecodeError:
        return None


def _decoded_metadata(raw: bytes) -> EventMetadata | None:
    try:
        return _METADATA.decode(raw)
    except msgspec.DecodeError:
        return None


def shown_body(event: DomainEvent) -> bytes:
    """An opened event's JSON; an erased one's personal fields as null."""
    if isinstance(event, JobCompleted) or not getattr(event, "erased", False):
        return _ENCODER.encode(event)  # erased rejected rows already read row: null
    body: dict[str, Any] = msgspec.to_builtins(event)
    for name in ("fields", "snapshot"):
        if isinstance(body.get(name), dict):
            body[name] |= dict.fromkeys(PERSONAL_FIELDS)
    if isinstance(event, LeadRejected):
        body["row"] = None
    if isinstance(event, DncNumberAdded):
        body["number"] = None
    if "dedupe_keys" in body and body["dedupe_keys"] is not None:
        body["dedupe_keys"] = None
    if isinstance(event, LeadUpdated):
        body["changes"] = [
            [field, None, None] if field in _PERSONAL else [field, old, new]
            for field, old, new in body["changes"]
        ]
    return _ENCODER.encode(body)
