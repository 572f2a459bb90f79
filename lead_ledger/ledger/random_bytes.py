"""Random bytes from the operating system's CSPRNG, drawn in blocks.

Each `os.urandom` call is a system call; in a virtual machine it cost ~10 µs here, and a
50,000-lead insert asks for ~150,000 small pieces (a data key and a nonce per lead, random bits
per event id): a second of one core. Drawing 64 KiB at a time and handing out slices gives the
same bytes at a fraction of the cost. The block is process-local and dropped in a forked child,
so two processes never hand out the same bytes (a nonce repeated under one key would break
AES-GCM).
"""

from __future__ import annotations

import os
import threading
from typing import Final

BLOCK: Final = 64 * 1024


class _Pool:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.block = b""
        self.offset = 0

    def take(self, n: int) -> bytes:
        if n > BLOCK:
            return os.urandom(n)
        with self.lock:
            if self.offset + n > len(self.block):
                self.block, self.offset = os.urandom(BLOCK), 0
            start = self.offset
            self.offset += n
            return self.block[start : self.offset]

    def forget(self) -> None:
        self.block, self.offset = b"", 0


_POOL: Final = _Pool()
os.register_at_fork(after_in_child=_POOL.forget)


def random_bytes(n: int) -> bytes:
    """`n` bytes from the OS CSPRNG, never handed out twice in any process."""
    return _POOL.take(n)
