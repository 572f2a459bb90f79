"""When a lead row was entered and last modified: the one rule, for every path that computes it.

A live lead row carries `entry_at` and `modified_at`. The events that make a lead live set both:
a LeadInserted enters the lead when it is recorded; a LeadRestored brings back the entry time it
was archived with (when it has one), so a lead keeps its entry time across an archive round
trip. A change of the live fields (LeadUpdated, LeadReassigned) moves `modified_at` to the
time it was recorded, even when it changes nothing. Archive bookkeeping (LeadArchived,
LeadArchiveSynced, LeadArchiveRemoved) and do-not-call marks (LeadMarkedDnc, LeadDncCleared:
the registry's doing, not a change of the lead's fields) move the version but not the times,
and a LeadDeleted ends the live row.

The Python fold of the leads view applies `entered` and `changed`; the as-of read applies
`times_after`, which is the two together. The SQL that computes rows on the server
(`projections/lead_rows_sql.py` and the statements that feed it, in `set_based.py` and
`fresh_inserts.py`) cannot call Python: it applies only LeadInserted, LeadUpdated and
LeadReassigned, each of which sets `modified_at`, and `set_based.py` refuses to import should
that stop being true. tests/integration/test_row_times.py holds both SQL paths to this rule on a
real database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, NamedTuple, TypeAlias, assert_never

from lead_ledger.ledger.events import (
    LeadArchived,
    LeadArchiveRemoved,
    LeadArchiveSynced,
    LeadDeleted,
    LeadDncCleared,
    LeadErased,
    LeadEvent,
    LeadInserted,
    LeadMarkedDnc,
    LeadReassigned,
    LeadRestored,
    LeadUpdated,
)


class LeadTimes(NamedTuple):
    entry_at: datetime
    modified_at: datetime


# The lead events that keep a live row (changing its fields or not).
Change: TypeAlias = (
    LeadUpdated
    | LeadReassigned
    | LeadArchived
    | LeadArchiveSynced
    | LeadArchiveRemoved
    | LeadMarkedDnc
    | LeadDncCleared
)


def entered(event: LeadInserted | LeadRestored, recorded_at: datetime) -> LeadTimes:
    """The times of the row that `event`, recorded at `recorded_at`, makes live."""
    match event:
        case LeadInserted():
            return LeadTimes(recorded_at, recorded_at)
        case LeadRestored():
            return LeadTimes(event.entry_at or recorded_at, recorded_at)
        case _:
            assert_never(event)


def changed(times: LeadTimes, event: Change, recorded_at: datetime) -> LeadTimes:
    """The times of a live row after `event`, recorded at `recorded_at`."""
    match event:
        case LeadUpdated() | LeadReassigned():
            return LeadTimes(times.entry_at, recorded_at)
        case (
            LeadArchived()
            | LeadArchiveSynced()
            | LeadArchiveRemoved()
            | LeadMarkedDnc()
            | LeadDncCleared()
        ):
            return times
        case _:
            assert_never(event)


def times_after(
    times: LeadTimes | None, event: LeadEvent, recorded_at: datetime
) -> LeadTimes | None:
    """The row's times after `event`, recorded at `recorded_at`; None when the lead is not
    live after it. `times` are the row's times before it (None when it was not live)."""
    match event:
        case LeadInserted() | LeadRestored():
            return entered(event, recorded_at)
        case LeadDeleted() | LeadErased():
            return None
        case (
            LeadUpdated()
            | LeadReassigned()
            | LeadArchived()
            | LeadArchiveSynced()
            | LeadArchiveRemoved()
            | LeadMarkedDnc()
            | LeadDncCleared()
        ):
            return None if times is None else changed(times, event, recorded_at)
        case _:
            assert_never(event)


# The event types after which `modified_at` is the event's own time (whenever the lead is live);
# tests/unit/test_row_times.py holds this set to the functions above.
MODIFYING: Final[frozenset[type[LeadEvent]]] = frozenset(
    {LeadInserted, LeadRestored, LeadUpdated, LeadReassigned}
)
