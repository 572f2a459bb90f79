"""Office hours in the account's own timezone, including hours that span midnight."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lead_ledger.ledger.events import OfficeHours
from lead_ledger.ledger.office_hours import within_office_hours

WEEKDAYS_9_TO_6 = OfficeHours(
    timezone="Asia/Kolkata", days=[1, 2, 3, 4, 5], start="09:00", end="18:00"
)
NIGHTS = OfficeHours(timezone="Europe/Berlin", days=[5], start="22:00", end="06:00")


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (datetime(2026, 11, 23, 3, 30, tzinfo=UTC), True),  # Mon 09:00 IST
        (datetime(2026, 11, 23, 3, 29, tzinfo=UTC), False),  # Mon 08:59 IST
        (datetime(2026, 11, 23, 12, 29, tzinfo=UTC), True),  # Mon 17:59 IST
        (datetime(2026, 11, 23, 12, 30, tzinfo=UTC), False),  # Mon 18:00 IST: end is exclusive
        (datetime(2026, 11, 22, 6, 0, tzinfo=UTC), False),  # Sun 11:30 IST
    ],
)
def test_daytime_hours_in_their_timezone(moment: datetime, inside: bool) -> None:
    """09:00-18:00 IST on weekdays, checked from UTC instants."""
    assert within_office_hours(WEEKDAYS_9_TO_6, moment) is inside


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (datetime(2026, 11, 27, 21, 30, tzinfo=UTC), True),  # Fri 22:30 CET
        (datetime(2026, 11, 28, 4, 0, tzinfo=UTC), True),  # Sat 05:00 CET: Friday's night
        (datetime(2026, 11, 28, 5, 0, tzinfo=UTC), False),  # Sat 06:00 CET
        (datetime(2026, 11, 28, 21, 30, tzinfo=UTC), False),  # Sat 22:30: Saturday not listed
        (datetime(2026, 11, 27, 3, 0, tzinfo=UTC), False),  # Fri 04:00: Thursday's night
    ],
)
def test_hours_spanning_midnight_belong_to_the_start_day(moment: datetime, inside: bool) -> None:
    """22:00-06:00 on Fridays covers Friday night into Saturday morning only."""
    assert within_office_hours(NIGHTS, moment) is inside
