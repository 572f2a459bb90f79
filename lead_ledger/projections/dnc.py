"""The do-not-call registry view: one row per entry, keyed by entry id (folded from
`dnc-<entry id>`). A removed entry has no row; an erased one (its number's key destroyed, which
only happens after removal) folds to nothing as well."""

from __future__ import annotations

from typing import ClassVar

from lead_ledger.ledger.dnc_events import DncNumberAdded, DncNumberChanged, DncNumberRemoved
from lead_ledger.ledger.envelope import RecordedEvent
from lead_ledger.ledger.events import DomainEvent
from lead_ledger.projections.base import Projection, Rows

_DNC_EVENTS = (DncNumberAdded, DncNumberChanged, DncNumberRemoved)


class DncProjection(Projection):
    name: ClassVar[str] = "dnc"
    table: ClassVar[str] = "dnc"
    key: ClassVar[str] = "entry_id"
    columns: ClassVar[tuple[str, ...]] = (
        "entry_id",
        "account_id",
        "campaign_id",
        "number",
        "digest",
        "status",
        "expires_at",
        "source",
        "added_at",
        "changed_at",
    )
    handles: ClassVar[frozenset[type]] = frozenset(_DNC_EVENTS)

    def key_of(self, event: DomainEvent) -> tuple[int, bool]:
        if not isinstance(event, _DNC_EVENTS):
            raise TypeError(f"{type(event).__name__} is not a do-not-call event")
        return event.entry_id, isinstance(event, DncNumberAdded)

    def fold(self, rows: Rows, recorded: RecordedEvent, event: DomainEvent) -> None:
        match event:
            case DncNumberAdded(erased=False):
                rows.put(
                    event.entry_id,
                    {
                        "entry_id": event.entry_id,
                        "account_id": event.account_id,
                        "campaign_id": event.campaign_id,
                        "number": event.number,
                        "digest": event.digest,
                        "status": event.status,
                        "expires_at": event.expires_at,
                        "source": event.source,
                        "added_at": recorded.recorded_at,
                        "changed_at": recorded.recorded_at,
                    },
                )
            case DncNumberChanged():
                row = rows.get(event.entry_id)
                if row is not None:
                    changed = {"status": event.status, "expires_at": event.expires_at}
                    rows.put(event.entry_id, row | changed | {"changed_at": recorded.recorded_at})
            case DncNumberRemoved() | DncNumberAdded():
                rows.drop(event.entry_id)
            case _:
                pass
