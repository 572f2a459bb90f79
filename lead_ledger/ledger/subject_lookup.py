"""What an erasure request can find a subject by: keyed digests of its phone numbers and
user_data (docs/erasure.md). The log and the key store hold these digests, never the values.

A lead is found by its dedupe keys (the numbers as the duplicate check compares them) and its
user_data. A refused or rejected row has no lead fields, only the cells the client sent: each
cell is looked up both as user_data and, when it has enough digits to be one, as phone numbers
(a comma-separated list counts each number).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from lead_ledger.ledger.events import (
    DomainEvent,
    LeadArchived,
    LeadArchiveSynced,
    LeadInserted,
    LeadRejected,
    LeadRestored,
    LeadUpdated,
)
from lead_ledger.ledger.job_events import CellValue, JobCompleted
from lead_ledger.ledger.phones import dedupe_key, digits_only
from lead_ledger.ledger.sealing import lead_subject, refused_subject, rejected_subject

Digest = Callable[[str], str]
# Fewer digits than this is no phone number anywhere (the shortest national numbers have 6+).
MIN_PHONE_DIGITS: Final = 6


def user_data_token(value: str) -> str:
    # Kept apart from phone tokens: a user_data of "9876543210" is not that phone number.
    return "user_data:" + value.strip()


def phone_tokens(value: str, region: str | None) -> list[str]:
    """The dedupe keys of the numbers in one cell or request value."""
    parts = value.split(",")
    return [dedupe_key(p, region) for p in parts if len(digits_only(p)) >= MIN_PHONE_DIGITS]


def _lead_tokens(dedupe_keys: Iterable[str], user_data: object) -> set[str]:
    tokens = set(dedupe_keys)
    if isinstance(user_data, str) and user_data.strip():
        tokens.add(user_data_token(user_data))
    return tokens


def _row_tokens(row: Mapping[str, CellValue] | None, region: str | None) -> set[str]:
    tokens: set[str] = set()
    for value in (row or {}).values():
        if isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value)
            if text.strip():
                tokens.add(user_data_token(text))
                tokens.update(phone_tokens(text, region))
    return tokens


def event_tokens(
    event: DomainEvent, event_id: uuid.UUID, region: str | None
) -> dict[str, set[str]]:
    """The lookup tokens an event adds to each of its subjects (before digesting)."""
    match event:
        case LeadInserted():
            return {
                lead_subject(event.lead_id): _lead_tokens(event.dedupe_keys, event.fields.user_data)
            }
        case LeadArchived() | LeadArchiveSynced() | LeadRestored():
            tokens = _lead_tokens(event.dedupe_keys, event.snapshot.user_data)
            return {lead_subject(event.lead_id): tokens}
        case LeadUpdated():
            user_data = next((c.new for c in event.changes if c.field == "user_data"), None)
            tokens = _lead_tokens(event.dedupe_keys or [], user_data)
            return {lead_subject(event.lead_id): tokens} if tokens else {}
        case LeadRejected():
            return {refused_subject(event_id): _row_tokens(event.row, region)} if event.row else {}
        case JobCompleted():
            return {
                rejected_subject(event.job_id, r.row_number): _row_tokens(r.row, region)
                for r in event.rejected_rows
            }
        case _:
            return {}


def needs_region(event: DomainEvent) -> bool:
    """Whether `event_tokens` reads numbers that were not normalised yet (rows as sent)."""
    return isinstance(event, LeadRejected | JobCompleted)
