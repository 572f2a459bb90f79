"""Do-not-call events (stream dnc-<entry id>): an entry of an account's registry, added,
changed (status, expiry) and removed (docs/dnc.md).

An entry's number is personal data: stored, `number` is empty and `sealed` holds it, for the
subject `dnc-<entry id>` (the entry's own stream, so erasing a lead never touches it); the
entry is matched by `digest`, the keyed hash dedupe keys use (ledger/subject_keys.py).
Standalone (no import of events.py) so that events.py can import these into DomainEvent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal, TypeAlias

import msgspec

from lead_ledger.ledger.envelope import Sealed

DncStatus = Literal["Active", "Inactive"]
# What an entry covers: every campaign of the account, or one.
DncScope = Literal["account", "campaign"]
DNC_STATUSES: Final[tuple[DncStatus, ...]] = ("Active", "Inactive")


class _DncEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True):
    pass


class DncNumberAdded(_DncEvent, frozen=True, kw_only=True, tag="DncNumberAdded"):
    """A number on the account's do-not-call list: for every campaign (`campaign_id` None) or
    one. `number` is its dedupe key (E.164 where it parses, else digits); only an Active entry
    that has not expired blocks. `source` is the dialect it came through."""

    entry_id: int
    account_id: int
    campaign_id: int | None = None
    number: str = ""
    digest: str
    status: DncStatus = "Active"
    expires_at: datetime | None = None
    source: str
    sealed: Sealed | None = None
    erased: bool = False


class DncNumberChanged(_DncEvent, frozen=True, kw_only=True, tag="DncNumberChanged"):
    """The entry's status and expiry from now on (both, as they now are)."""

    entry_id: int
    account_id: int
    status: DncStatus
    expires_at: datetime | None = None


class DncNumberRemoved(_DncEvent, frozen=True, kw_only=True, tag="DncNumberRemoved"):
    """The entry is gone from the registry: it blocks nothing and lists nowhere."""

    entry_id: int
    account_id: int


DncEvent: TypeAlias = DncNumberAdded | DncNumberChanged | DncNumberRemoved


def stream_of_dnc(entry_id: int) -> str:
    return f"dnc-{entry_id}"


def dnc_subject(entry_id: int) -> str:
    """The subject an entry's number is sealed for: its own stream."""
    return stream_of_dnc(entry_id)
