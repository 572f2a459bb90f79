"""The do-not-call marks of live leads: one row per (lead, entry), keyed by lead id (folded from
`lead-<id>`). A lead reads `DNC` while a row of it has not expired; deleting or erasing the
lead drops its rows, as the lead leaves the live view (docs/dnc.md)."""

from __future__ import annotations

from typing import ClassVar, Final

from lead_ledger.ledger.envelope import RecordedEvent
from lead_ledger.ledger.events import (
    DomainEvent,
    LeadDeleted,
    LeadDncCleared,
    LeadErased,
    LeadMarkedDnc,
)
from lead_ledger.projections.base import Projection, Rows

_MARK_EVENTS: Final = (LeadMarkedDnc, LeadDncCleared, LeadDeleted, LeadErased)


class LeadDncProjection(Projection):
    name: ClassVar[str] = "lead_dnc"
    table: ClassVar[str] = "lead_dnc"
    key: ClassVar[str] = "lead_id"
    columns: ClassVar[tuple[str, ...]] = (
        "lead_id",
        "entry_id",
        "scope",
        "expires_at",
        "marked_at",
    )
    handles: ClassVar[frozenset[type]] = frozenset(_MARK_EVENTS)

    def key_of(self, event: DomainEvent) -> tuple[int, bool]:
        if not isinstance(event, _MARK_EVENTS):
            raise TypeError(f"{type(event).__name__} is not a do-not-call mark")
        return event.lead_id, False

    def fold(self, rows: Rows, recorded: RecordedEvent, event: DomainEvent) -> None:
        match event:
            case LeadMarkedDnc():
                # A second mark by the same entry carries its new expiry: it replaces the first.
                kept = [r for r in rows.group(event.lead_id) if r["entry_id"] != event.dnc_entry_id]
                mark = {
                    "lead_id": event.lead_id,
                    "entry_id": event.dnc_entry_id,
                    "scope": event.dnc_scope,
                    "expires_at": event.expires_at,
                    "marked_at": recorded.recorded_at,
                }
                rows.set_group(event.lead_id, sorted([*kept, mark], key=lambda r: r["entry_id"]))
            case LeadDncCleared():
                group = rows.group(event.lead_id)
                rows.set_group(
                    event.lead_id, [r for r in group if r["entry_id"] != event.dnc_entry_id]
                )
            case LeadDeleted() | LeadErased():
                if rows.group(event.lead_id):
                    rows.drop(event.lead_id)
            case _:
                pass
