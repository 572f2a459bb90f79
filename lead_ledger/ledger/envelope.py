"""What the store writes and reads: events as opaque JSON bodies with their envelope.

The store knows nothing of lead or account events; the domain encodes its tagged Structs into
`NewEvent`s and decodes `RecordedEvent.data` with its own decoders.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

import msgspec

# Expected-version sentinels for `append`: the stream must not exist yet / any version is fine.
NO_STREAM: Final = 0
ANY_VERSION: Final = -1


class Actor(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who caused an event: the account, the credential used and the API dialect spoken."""

    dialect: str
    account_id: int | None = None
    credential_id: str | None = None
    username: str | None = None


class Sealed(msgspec.Struct, frozen=True, array_like=True):
    """Personal data as stored: which subject's key sealed it, and the sealed bytes (base64)."""

    subject: str
    data: str


class EventMetadata(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Why and where an event was recorded; stored beside the body, never part of it."""

    actor: Actor | None = None
    request_id: str | None = None
    job_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    client_address: str | None = None
    sealed: Sealed | None = None  # the client address, as stored (ledger/sealing.py)


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event about to be appended. `data` is the JSON-encoded body."""

    event_id: uuid.UUID
    type: str
    data: bytes
    schema_version: int = 1


class StreamAppend(msgspec.Struct, frozen=True, kw_only=True):
    """Events for one stream, with the version the writer last saw (or a sentinel)."""

    stream_id: str
    expected_version: int
    events: list[NewEvent]
    metadata: EventMetadata = EventMetadata()
    account_id: int | None = None


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event as stored, with the position and time the database gave it."""

    position: int
    event_id: uuid.UUID
    stream_id: str
    stream_version: int
    type: str
    schema_version: int
    data: bytes
    metadata: bytes
    recorded_at: datetime
    transaction_id: int

    def decoded_metadata(self) -> EventMetadata:
        return _METADATA_DECODER.decode(self.metadata)


_METADATA_DECODER: Final = msgspec.json.Decoder(EventMetadata)
METADATA_ENCODER: Final = msgspec.json.Encoder()
