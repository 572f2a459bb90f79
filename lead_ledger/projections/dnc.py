"""The do-not-call registry view: one row per entry, keyed by entry id (folded from
`dnc-<entry id>`). A removed entry has no row; an erased one (its number's key destroyed, which
only happens after removal) folds to nothing as well."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, cast

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.dnc_events import DncNumberAdded, DncNumberChanged, DncNumberRemoved
from lead_ledger.ledger.envelope import RecordedEvent
from lead_ledger.ledger.events import DomainEvent
from lead_ledger.projections.base import Pair, Projection, Rows

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

    async def apply_live(self, conn: Connection, pairs: Sequence[Pair]) -> None:
        """Entries only added (an import's 10,000 at a time) are new rows: written straight
        from the events, the rows the fold makes of them (`_added`), without the fold."""
        relevant = [(r, e) for r, e in pairs if type(e) in self.handles]
        if relevant and all(isinstance(e, DncNumberAdded) and not e.erased for _, e in relevant):
            records = [_added(r, cast("DncNumberAdded", e)) for r, e in relevant]
            await self.write_records(conn, records)
            return
        await super().apply_live(conn, pairs)

    def key_of(self, event: DomainEvent) -> tuple[int, bool]:
        if not isinstance(event, _DNC_EVENTS):
            raise TypeError(f"{type(event).__name__} is not a do-not-call event")
        return event.entry_id, isinstance(event, DncNumberAdded)

    def fold(self, rows: Rows, recorded: RecordedEvent, event: DomainEvent) -> None:
        match event:
            case DncNumberAdded(erased=False):
                rows.put(
                    event.entry_id, dict(zip(self.columns, _added(recorded, event), strict=True))
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


def _added(recorded: RecordedEvent, event: DncNumberAdded) -> tuple[object, ...]:
    """The row of an entry added, in the view's column order."""
    return (
        event.entry_id,
        event.account_id,
        event.campaign_id,
        event.number,
        event.digest,
        event.status,
        event.expires_at,
        event.source,
        recorded.recorded_at,
        recorded.recorded_at,
    )
