"""Office hours: is a moment inside the account's configured hours? Pure; the clock is passed in."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, time

from lead_ledger.ledger.events import OfficeHours


def within_office_hours(hours: OfficeHours, moment: datetime) -> bool:
    """True when `moment` (timezone-aware) falls inside the hours, in their own timezone.

    `start <= t < end` on the listed ISO weekdays. When end is before start the hours span
    midnight, and the part after midnight belongs to the day the hours started on.
    """
    local = moment.astimezone(zoneinfo.ZoneInfo(hours.timezone))
    start, end, now = _hhmm(hours.start), _hhmm(hours.end), local.time()
    weekday = local.isoweekday()
    if start <= end:
        return weekday in hours.days and start <= now < end
    if now >= start:
        return weekday in hours.days
    previous_day = 7 if weekday == 1 else weekday - 1
    return now < end and previous_day in hours.days


def _hhmm(text: str) -> time:
    hour, minute = text.split(":")
    return time(int(hour), int(minute))
