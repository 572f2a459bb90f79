"""Personal data sealed in the stored event, opened on read (docs/erasure.md).

An event is stored as its clear part: every field that is not personal, the dedupe keys as keyed
digests, and a `sealed` member holding the personal part, encrypted with the key of the subject
it belongs to. Opening puts the personal part back. When the subject's key is gone (erased), the
event opens to its clear part with `erased` set: personal fields at their defaults, never an
error, so a fold over the log reaches the same erased state that the erasure left live.

Subjects: a lead's data is sealed for `lead-<id>` (its stream id); a refused row (LeadRejected)
for `refused-<event id>`; a job's rejected row for `rejected-<job id>-<row number>`; the client
address in metadata for the stream it was written to.

Pure: keys come in as a mapping, nothing here reads the database.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import msgspec

from lead_ledger.ledger import subject_keys
from lead_ledger.ledger.dnc_events import DncNumberAdded, dnc_subject
from lead_ledger.ledger.envelope import EventMetadata, Sealed
from lead_ledger.ledger.events import (
    DomainEvent,
    FieldChange,
    FieldValue,
    LeadArchived,
    LeadArchiveSynced,
    LeadFields,
    LeadInserted,
    LeadRejected,
    LeadRestored,
    LeadUpdated,
)
from lead_ledger.ledger.job_events import CellValue, JobCompleted, RejectedRow

# Every lead field that can name or reach a person. State, country, agent, skill, priority,
# expiry and status stay clear: audit and projections work on them.
PERSONAL_FIELDS: Final = (
    "phone_numbers",
    "name",
    "first_name",
    "middle_initial",
    "last_name",
    "title",
    "salutation",
    "company",
    "address1",
    "address2",
    "address3",
    "city",
    "postal_code",
    "email",
    "comments",
    "user_data",
    "reference_number",
    "crm",
    "extra",
)
_PERSONAL: Final = frozenset(PERSONAL_FIELDS)
_DEFAULTS: Final = LeadFields()
# The personal fields at their defaults: what a sealed or erased event's clear part holds.
BLANK: Final[dict[str, Any]] = {name: getattr(_DEFAULTS, name) for name in PERSONAL_FIELDS}

Keys = Mapping[str, bytes]
Digest = Callable[[str], str]


class _LeadSecret(msgspec.Struct, frozen=True, array_like=True):
    """What a LeadInserted, archive copy or restore seals: all of its fields (the clear ones
    too: opening is then one decode, with no merge) and its dedupe keys."""

    fields: LeadFields
    dedupe_keys: list[str]


class _UpdateSecret(msgspec.Struct, frozen=True, array_like=True):
    """What a LeadUpdated seals: old and new value of each personal change, in order."""

    values: list[tuple[FieldValue, FieldValue]]
    dedupe_keys: list[str] | None


_ENCODER: Final = msgspec.json.Encoder()
_LEAD_SECRET: Final = msgspec.json.Decoder(_LeadSecret)
_UPDATE_SECRET: Final = msgspec.json.Decoder(_UpdateSecret)
_ROW: Final = msgspec.json.Decoder(dict[str, CellValue])
_TEXT: Final = msgspec.json.Decoder(str)


# --- subjects ------------------------------------------------------------------------------------


def lead_subject(lead_id: int) -> str:
    return f"lead-{lead_id}"


def refused_subject(event_id: uuid.UUID) -> str:
    return f"refused-{event_id}"


def rejected_subject(job_id: int, row_number: int) -> str:
    return f"rejected-{job_id}-{row_number}"


def subjects_to_seal(event: DomainEvent, event_id: uuid.UUID) -> list[str]:
    """The subjects whose keys sealing this event needs (none for events without personal
    data)."""
    match event:
        case LeadInserted() | LeadArchived() | LeadArchiveSynced() | LeadRestored():
            return [lead_subject(event.lead_id)]
        case LeadUpdated():
            if any(c.field in _PERSONAL for c in event.changes) or event.dedupe_keys is not None:
                return [lead_subject(event.lead_id)]
            return []
        case LeadRejected():
            return [refused_subject(event_id)] if event.row else []
        case JobCompleted():
            return [rejected_subject(event.job_id, r.row_number) for r in event.rejected_rows]
        case DncNumberAdded():
            return [dnc_subject(event.entry_id)]
        case _:
            return []


def sealed_subjects(event: DomainEvent) -> Iterable[str]:
    """The subjects a stored event's sealed parts belong to: the keys opening it needs."""
    if isinstance(event, JobCompleted):
        return [r.sealed.subject for r in event.rejected_rows if r.sealed is not None]
    sealed: Sealed | None = getattr(event, "sealed", None)
    return [sealed.subject] if sealed is not None else []


# --- sealing -------------------------------------------------------------------------------------


def _seal(keys: Keys, subject: str, plaintext: bytes) -> Sealed:
    data = subject_keys.seal(keys[subject], plaintext, subject)
    return Sealed(subject=subject, data=base64.b64encode(data).decode())


def _open(keys: Keys, sealed: Sealed) -> bytes | None:
    """The plaintext, or None when the subject's key is gone (erased)."""
    key = keys.get(sealed.subject)
    if key is None:
        return None
    return subject_keys.open_sealed(key, base64.b64decode(sealed.data), sealed.subject)


def _seal_lead(
    keys: Keys, subject: str, fields: LeadFields, dedupe_keys: list[str]
) -> tuple[LeadFields, Sealed]:
    clear = msgspec.structs.replace(fields, **BLANK)
    return clear, _seal(keys, subject, _ENCODER.encode(_LeadSecret(fields, dedupe_keys)))


def seal_event(event: DomainEvent, event_id: uuid.UUID, keys: Keys, digest: Digest) -> DomainEvent:
    """The event as it is stored: personal data sealed, dedupe keys as digests. `keys` holds
    the key of every subject in `subjects_to_seal(event, event_id)`."""
    match event:
        case LeadInserted() | LeadArchived() | LeadArchiveSynced() | LeadRestored():
            return _seal_copy(event, keys, digest)
        case LeadUpdated():
            return _seal_update(event, keys, digest)
        case LeadRejected() if event.row:
            sealed = _seal(keys, refused_subject(event_id), _ENCODER.encode(event.row))
            return msgspec.structs.replace(event, row={}, sealed=sealed)
        case JobCompleted():
            rows = [
                msgspec.structs.replace(
                    r,
                    row={},
                    sealed=_seal(
                        keys, rejected_subject(event.job_id, r.row_number), _ENCODER.encode(r.row)
                    ),
                )
                for r in event.rejected_rows
            ]
            return msgspec.structs.replace(event, rejected_rows=rows)
        case DncNumberAdded():
            sealed = _seal(keys, dnc_subject(event.entry_id), _ENCODER.encode(event.number))
            return msgspec.structs.replace(event, number="", sealed=sealed)
        case _:
            return event


_Copy = LeadInserted | LeadArchived | LeadArchiveSynced | LeadRestored


def _seal_copy(event: _Copy, keys: Keys, digest: Digest) -> _Copy:
    """A LeadInserted's fields or an archive copy's or restore's snapshot, sealed."""
    subject = lead_subject(event.lead_id)
    digests = [digest(k) for k in event.dedupe_keys]
    if isinstance(event, LeadInserted):
        clear, sealed = _seal_lead(keys, subject, event.fields, event.dedupe_keys)
        return msgspec.structs.replace(event, fields=clear, dedupe_keys=digests, sealed=sealed)
    clear, sealed = _seal_lead(keys, subject, event.snapshot, event.dedupe_keys)
    return msgspec.structs.replace(event, snapshot=clear, dedupe_keys=digests, sealed=sealed)


def _seal_update(event: LeadUpdated, keys: Keys, digest: Digest) -> LeadUpdated:
    personal = [(c.old, c.new) for c in event.changes if c.field in _PERSONAL]
    if not personal and event.dedupe_keys is None:
        return event
    # The field names stay clear (an audit shows what changed); their values are sealed.
    changes = [
        FieldChange(c.field, BLANK[c.field], BLANK[c.field]) if c.field in _PERSONAL else c
        for c in event.changes
    ]
    secret = _UpdateSecret(personal, event.dedupe_keys)
    digests = None if event.dedupe_keys is None else [digest(k) for k in event.dedupe_keys]
    sealed = _seal(keys, lead_subject(event.lead_id), _ENCODER.encode(secret))
    return msgspec.structs.replace(event, changes=changes, dedupe_keys=digests, sealed=sealed)


def seal_metadata(metadata: EventMetadata, subject: str, keys: Keys) -> EventMetadata:
    """Metadata as stored: the client address sealed for the stream's subject."""
    if metadata.client_address is None:
        return metadata
    sealed = _seal(keys, subject, _ENCODER.encode(metadata.client_address))
    return msgspec.structs.replace(metadata, client_address=None, sealed=sealed)


# --- opening -------------------------------------------------------------------------------------


def open_event(event: DomainEvent, keys: Keys) -> DomainEvent:
    """The event with its personal data back, or marked `erased` with that data at its
    defaults when a subject's key is gone. Events without sealed data come back as they are."""
    if isinstance(event, JobCompleted):
        return _open_job(event, keys)
    sealed: Sealed | None = getattr(event, "sealed", None)
    if sealed is None:
        return event
    plaintext = _open(keys, sealed)
    match event:
        case LeadInserted() | LeadArchived() | LeadArchiveSynced() | LeadRestored():
            return _open_copy(event, plaintext)
        case LeadUpdated():
            return _open_update(event, plaintext)
        case LeadRejected():
            return _open_refusal(event, plaintext)
        case DncNumberAdded():
            if plaintext is None:
                return msgspec.structs.replace(event, sealed=None, erased=True)
            return msgspec.structs.replace(event, number=_TEXT.decode(plaintext), sealed=None)
        case _:
            return event


def _open_refusal(event: LeadRejected, plaintext: bytes | None) -> LeadRejected:
    if plaintext is None:
        return msgspec.structs.replace(event, sealed=None, erased=True)
    return msgspec.structs.replace(event, row=_ROW.decode(plaintext), sealed=None)


def _open_copy(event: _Copy, plaintext: bytes | None) -> _Copy:
    if plaintext is None:
        return msgspec.structs.replace(event, dedupe_keys=[], sealed=None, erased=True)
    secret = _LEAD_SECRET.decode(plaintext)
    if isinstance(event, LeadInserted):
        return msgspec.structs.replace(
            event, fields=secret.fields, dedupe_keys=secret.dedupe_keys, sealed=None
        )
    return msgspec.structs.replace(
        event, snapshot=secret.fields, dedupe_keys=secret.dedupe_keys, sealed=None
    )


def _open_update(event: LeadUpdated, plaintext: bytes | None) -> LeadUpdated:
    if plaintext is None:
        # The clear part already holds each personal change at its field's default.
        gone: list[str] | None = None if event.dedupe_keys is None else []
        return msgspec.structs.replace(event, dedupe_keys=gone, sealed=None, erased=True)
    secret = _UPDATE_SECRET.decode(plaintext)
    values = iter(secret.values)
    changes = [
        FieldChange(c.field, *next(values)) if c.field in _PERSONAL else c for c in event.changes
    ]
    return msgspec.structs.replace(
        event, changes=changes, dedupe_keys=secret.dedupe_keys, sealed=None
    )


def _open_job(event: JobCompleted, keys: Keys) -> JobCompleted:
    if not any(r.sealed is not None for r in event.rejected_rows):
        return event
    return msgspec.structs.replace(
        event, rejected_rows=[_open_row(r, keys) for r in event.rejected_rows]
    )


def _open_row(row: RejectedRow, keys: Keys) -> RejectedRow:
    if row.sealed is None:
        return row
    plaintext = _open(keys, row.sealed)
    if plaintext is None:
        return msgspec.structs.replace(row, row=None, sealed=None, erased=True)
    return msgspec.structs.replace(row, row=_ROW.decode(plaintext), sealed=None)


# --- opening for the set-based rebuild ------------------------------------------------------------
# The rebuild's statements read the clear part from `events` and the personal part from these:
# one JSON array `[fields, dedupe_keys]` per sealed event, so that opening a LeadInserted is a
# decrypt and nothing else (its plaintext already has that shape).

_ERASED_INSERT: Final = b"[null,[]]"
_CHANGE_NAMES: Final = msgspec.json.Decoder(list[tuple[str, msgspec.Raw, msgspec.Raw]])


def inserted_secret_json(key: bytes | None, subject: str, data: bytes) -> bytes:
    """A sealed LeadInserted's personal part: all its fields (the clear ones too) and its dedupe
    keys; for an erased subject null fields (the clear part, with its personal fields at their
    defaults, stands) and no dedupe keys, as `open_event`."""
    if key is None:
        return _ERASED_INSERT
    return subject_keys.open_sealed(key, data, subject)


def updated_secret_json(
    key: bytes | None, subject: str, data: bytes, changes: bytes, *, has_dedupe_keys: bool
) -> bytes:
    """A sealed LeadUpdated's personal part: the new value of each personal change (the last
    one when a field changes twice) and its dedupe keys; for an erased subject each personal
    change at its field's default and, when it carried dedupe keys, none, as `open_event`."""
    names = [name for name, _old, _new in _CHANGE_NAMES.decode(changes) if name in _PERSONAL]
    if key is None:
        fields = {name: BLANK[name] for name in names}
        return _ENCODER.encode((fields, [] if has_dedupe_keys else None))
    secret = _UPDATE_SECRET.decode(subject_keys.open_sealed(key, data, subject))
    new = {name: value for name, (_old, value) in zip(names, secret.values, strict=True)}
    return _ENCODER.encode((new, secret.dedupe_keys))


def open_metadata(metadata: EventMetadata, keys: Keys) -> EventMetadata:
    """Metadata with its client address back; None when its subject is erased."""
    if metadata.sealed is None:
        return metadata
    plaintext = _open(keys, metadata.sealed)
    address = None if plaintext is None else _TEXT.decode(plaintext)
    return msgspec.structs.replace(metadata, client_address=address, sealed=None)
