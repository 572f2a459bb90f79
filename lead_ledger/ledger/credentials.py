"""Credential keys: how one is made and what of it is stored (stdlib only, no I/O).

The admin service issues keys with these and the API checks them with these, so a key issued by
one is always recognised by the other; neither layer imports the other.
"""

from __future__ import annotations

import hashlib
import secrets


def new_key() -> str:
    """A fresh credential key: 256 bits, URL-safe, shown once to the admin."""
    return secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    """What the ledger stores of a key and looks it up by: its SHA-256, as hex."""
    # surrogateescape: a header's bytes that are no UTF-8 hash as sent instead of raising.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
