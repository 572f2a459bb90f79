"""What an erasure request can find a subject by, beyond the views: keyed digests of numbers
and user_data (docs/erasure.md). The key store holds these digests, never the values.

A live lead is found through `contacts`. What the views no longer hold is recorded here: a
lead's contact values just before a write changes or deletes them (the writer reads them from
`contacts`, `LEAD_CONTACT_KINDS`), and the cells of refused and rejected rows, which never
became leads: each cell is looked up both as user_data and, when it has enough digits to be
one, as phone numbers (a comma-separated list counts each number). A number Vicidial dials
with a separate country code (`phone_code`) is also looked up as that code makes it
(`dialled_tokens`): a lead's key reads its national digits in the account's region.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Final

from lead_ledger.ledger.events import DomainEvent, LeadDeleted, LeadRejected, LeadUpdated
from lead_ledger.ledger.job_events import CellValue, JobCompleted
from lead_ledger.ledger.phones import dedupe_key, digits_only, with_country_code
from lead_ledger.ledger.sealing import refused_subject, rejected_subject

# Fewer digits than this is no phone number anywhere (the shortest national numbers have 6+).
MIN_PHONE_DIGITS: Final = 6
# Vicidial's names for the numbers its `phone_code` is dialled with, in a row as sent.
DIALLED_FIELDS: Final = ("phone_number", "alt_phone")


def user_data_token(value: str) -> str:
    # Kept apart from phone tokens: a user_data of "9876543210" is not that phone number.
    return "user_data:" + value.strip()


def phone_tokens(value: str, region: str | None) -> list[str]:
    """The dedupe keys of the numbers in one cell or request value: each comma-separated part,
    and the whole (Vicidial keeps a comma inside one number as a dialling pause)."""
    parts = value.split(",")
    if len(parts) > 1:
        parts.append(value)
    return [dedupe_key(p, region) for p in parts if len(digits_only(p)) >= MIN_PHONE_DIGITS]


def dialled_tokens(phone_code: object, numbers: Iterable[object]) -> set[str]:
    """The E.164 spellings of numbers dialled with `phone_code` (none without one)."""
    if not _text(phone_code):
        return set()
    return {
        token
        for number in numbers
        if _text(number) and (token := with_country_code(str(phone_code), str(number)))
    }


def _text(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and bool(str(value).strip())


def _row_tokens(row: Mapping[str, CellValue] | None, region: str | None) -> set[str]:
    tokens: set[str] = set()
    for value in (row or {}).values():
        if _text(value):
            text = str(value)
            tokens.add(user_data_token(text))
            tokens.update(phone_tokens(text, region))
    if row:
        tokens.update(dialled_tokens(row.get("phone_code"), (row.get(f) for f in DIALLED_FIELDS)))
    return tokens


def event_tokens(
    event: DomainEvent, event_id: uuid.UUID, region: str | None
) -> dict[str, set[str]]:
    """The lookup tokens (before digesting) of a refused or rejected row's subject."""
    match event:
        case LeadRejected():
            return {refused_subject(event_id): _row_tokens(event.row, region)} if event.row else {}
        case JobCompleted():
            return {
                rejected_subject(event.job_id, r.row_number): _row_tokens(r.row, region)
                for r in event.rejected_rows
            }
        case _:
            return {}


def contact_token(kind: str, value: str) -> str | None:
    """The token of a `contacts` row of one of LEAD_CONTACT_KINDS."""
    if kind == "phone":
        return value
    return user_data_token(value) if kind == "user_data" else None


def leaving_contacts(event: DomainEvent) -> int | None:
    """The lead whose contact values this event may take out of the views (a delete, a change
    of numbers or user_data): the writer records them before it applies the event."""
    if isinstance(event, LeadDeleted):
        return event.lead_id
    if isinstance(event, LeadUpdated) and (
        event.dedupe_keys is not None or any(c.field == "user_data" for c in event.changes)
    ):
        return event.lead_id
    return None


LEAD_CONTACT_KINDS: Final = ("phone", "user_data")


def needs_region(event: DomainEvent) -> bool:
    """Whether `event_tokens` reads numbers that were not normalised yet (rows as sent)."""
    return isinstance(event, LeadRejected | JobCompleted)
