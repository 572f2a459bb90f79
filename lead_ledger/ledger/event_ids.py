"""Event ids: UUIDv7 (RFC 9562), time-ordered, so the unique index on `events.event_id` grows
at its right edge like the position index does, instead of taking each insert at a random leaf.

Random (v4) ids spread a 50,000-event append over every leaf of that index: each insert dirties
another page, pages split all over it, and once the index outgrows memory every insert is a
random read. Ordered ids keep the append on the last few pages.

Layout (RFC 9562, section 5.7, with the counter of section 6.2, method 1): 48 bits of Unix
milliseconds, the version (7), a 12-bit counter, the variant (0b10), 62 random bits. Ids drawn in
the same millisecond by this process increase through the counter, which starts at a random
value below 2^11 each millisecond so it has room to count; when it runs out, the timestamp moves
one millisecond ahead. Ids of several processes interleave by time but stay unique through the
random bits (62 of them, plus the counter's random start).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Final

from lead_ledger.ledger.random_bytes import random_bytes

_VERSION: Final = 0x7 << 76
_VARIANT: Final = 0b10 << 62
_COUNTER_MAX: Final = 0xFFF
_RANDOM_MASK: Final = (1 << 62) - 1
_COUNTER_START_MASK: Final = 0x7FF


class _Clock:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.millis = 0
        self.counter = 0

    def next(self) -> tuple[int, int]:
        """(milliseconds, counter), strictly increasing within this process."""
        now = time.time_ns() // 1_000_000
        with self.lock:
            if now > self.millis:
                self.millis = now
                self.counter = int.from_bytes(random_bytes(2)) & _COUNTER_START_MASK
            elif self.counter < _COUNTER_MAX:
                self.counter += 1
            else:
                # 4,096 ids in one millisecond (or a clock that stepped back): borrow the next.
                self.millis += 1
                self.counter = 0
            return self.millis, self.counter


_CLOCK: Final = _Clock()


def new_event_id() -> uuid.UUID:
    """A fresh UUIDv7, greater than every id this process drew before."""
    millis, counter = _CLOCK.next()
    random_bits = int.from_bytes(random_bytes(8)) & _RANDOM_MASK
    return uuid.UUID(int=(millis << 80) | _VERSION | (counter << 64) | _VARIANT | random_bits)
