"""Event ids: UUIDv7, increasing within the process, unique, carrying their time."""

from __future__ import annotations

import time
import uuid

from lead_ledger.ledger import event_ids
from lead_ledger.ledger.event_ids import new_event_id


def test_ids_are_version_7_and_carry_the_time() -> None:
    """A new id is an RFC 4122 UUIDv7 whose top 48 bits are the milliseconds it was drawn in."""
    before = time.time_ns() // 1_000_000
    drawn = new_event_id()
    after = time.time_ns() // 1_000_000
    assert drawn.version == 7
    assert drawn.variant == uuid.RFC_4122
    assert before <= drawn.int >> 80 <= after + 1


def test_ids_increase_and_never_repeat() -> None:
    """50,000 ids drawn in a row come out sorted and all distinct."""
    drawn = [new_event_id() for _ in range(50_000)]
    assert drawn == sorted(drawn)
    assert len(set(drawn)) == len(drawn)


def test_a_full_millisecond_borrows_the_next() -> None:
    """4,096 ids in one millisecond: the counter is spent, and the next id moves the time on
    rather than repeating or going back."""
    clock = event_ids._CLOCK
    last = new_event_id()
    with clock.lock:
        clock.counter = 0xFFF
        spent_millis = clock.millis = max(clock.millis, time.time_ns() // 1_000_000 + 50)
    following = new_event_id()
    assert following > last
    assert following.int >> 80 == spent_millis + 1
    assert (following.int >> 64) & 0xFFF == 0
