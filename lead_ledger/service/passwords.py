"""Password hashes: scrypt with a random salt, stored as a self-describing string.

Format: `scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`, so the cost can be raised later and old
hashes still verify with the parameters they were made with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

SCHEME: Final = "scrypt"
# n=2**14, r=8, p=1 is the RFC 7914 interactive-login cost: ~16 MiB and tens of milliseconds.
COST_N: Final = 1 << 14
BLOCK_R: Final = 8
PARALLEL_P: Final = 1
SALT_BYTES: Final = 16
HASH_BYTES: Final = 32
# Refuse stored parameters that would make a single verify allocate more than this.
_MAX_MEMORY: Final = 64 * 1024 * 1024


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=_MAX_MEMORY
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """A fresh hash of `password` with a new random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, COST_N, BLOCK_R, PARALLEL_P, HASH_BYTES)
    return f"{SCHEME}${COST_N}${BLOCK_R}${PARALLEL_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """True when `password` matches `encoded`; False for a mismatch or a malformed hash."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
        actual = _scrypt(password, salt, n, r, p, len(expected))
    except ValueError:  # bad numbers, bad base64, or parameters scrypt refuses
        return False
    # Constant time, so the comparison leaks nothing about how much of the hash matched.
    return bool(expected) and hmac.compare_digest(expected, actual)
