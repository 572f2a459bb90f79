"""The rule for a lead row's entry and modify times (ledger/row_times.py), event by event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec.inspect as mi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lead_ledger.ledger.events import (
    LEAD_EVENT_TYPES,
    FieldChange,
    LeadDeleted,
    LeadEvent,
    LeadFields,
    LeadInserted,
    LeadReassigned,
    LeadRestored,
    LeadUpdated,
)
from lead_ledger.ledger.row_times import MODIFYING, LeadTimes, times_after
from tests.unit.test_event_codec import values_of

AT = datetime(2024, 5, 1, 12, tzinfo=UTC)
BEFORE = LeadTimes(AT - timedelta(days=2), AT - timedelta(days=1))
ARCHIVED_ENTRY = AT - timedelta(days=30)
FIELDS = LeadFields(phone_numbers=["+919876543210"])


def test_an_insert_enters_and_modifies_the_row_when_recorded() -> None:
    """A LeadInserted's row was entered and last modified at its own time."""
    event = LeadInserted(lead_id=1, account_id=1, campaign_id=1, fields=FIELDS, dedupe_keys=["k"])
    assert times_after(None, event, AT) == LeadTimes(AT, AT)


@pytest.mark.parametrize(("carried", "entry"), [(ARCHIVED_ENTRY, ARCHIVED_ENTRY), (None, AT)])
def test_a_restore_keeps_the_archived_entry_time(carried: datetime | None, entry: datetime) -> None:
    """A restored row keeps the entry time it was archived with, else enters when restored."""
    event = LeadRestored(
        lead_id=1,
        account_id=1,
        campaign_id=1,
        snapshot=FIELDS,
        dedupe_keys=["k"],
        archive_version=2,
        entry_at=carried,
    )
    assert times_after(None, event, AT) == LeadTimes(entry, AT)


@pytest.mark.parametrize(
    "event",
    [
        LeadUpdated(lead_id=1, changes=[FieldChange("city", None, "Pune")]),
        LeadUpdated(lead_id=1, changes=[]),
        LeadReassigned(lead_id=1, from_agent=None, to_agent="ravi"),
    ],
)
def test_a_change_moves_only_modified_at(event: LeadEvent) -> None:
    """A change of the live fields, even an empty one, moves modified_at and keeps entry_at."""
    assert times_after(BEFORE, event, AT) == LeadTimes(BEFORE.entry_at, AT)
    assert times_after(None, event, AT) is None  # no live row to change


def test_a_delete_ends_the_row() -> None:
    """After a LeadDeleted there is no live row, so no times."""
    assert times_after(BEFORE, LeadDeleted(lead_id=1, reason="api"), AT) is None


@pytest.mark.parametrize("event_type", LEAD_EVENT_TYPES, ids=lambda t: t.__name__)
@settings(deadline=None)  # a shared, busy machine must not turn a slow draw into a failure
@given(data=st.data())
def test_modifying_names_the_types_that_move_modified_at(
    event_type: type[LeadEvent], data: st.DataObject
) -> None:
    """MODIFYING, which the SQL path is checked against, is what times_after does."""
    event = data.draw(values_of(mi.type_info(event_type)))
    after = times_after(BEFORE, event, AT)
    if event_type in MODIFYING:
        assert after is not None
        assert after.modified_at == AT
    else:
        assert after is None or after == BEFORE
