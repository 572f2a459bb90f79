"""Credential keys: how one is made and what of it is stored (stdlib only, no I/O).

The admin service issues keys with these and the API checks them with these, so a key issued by
one is always recognised by the other; neither layer imports the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# What a login token's HMAC reads before the credential id. A dedupe digest under the same
# secret reads a str encoded as UTF-8, which never holds the byte 0xFF: no value a lead can
# carry makes a digest that is also a token.
_LOGIN_TOKEN_DOMAIN = b"\xfflogin-token:"


def new_key() -> str:
    """A fresh credential key: 256 bits, URL-safe, shown once to the admin."""
    return secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    """What the ledger stores of a key and looks it up by: its SHA-256, as hex."""
    # surrogateescape: a header's bytes that are no UTF-8 hash as sent instead of raising.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def login_token(secret: bytes, credential_id: str) -> str:
    """The key of a credential a login issued: derived from the account's secret and the
    credential's id, so each later login of the user can answer it again although only its
    digest is stored (Django REST framework's one token per user). 256 bits, URL-safe, the
    shape of `new_key`'s."""
    mac = hmac.digest(secret, _LOGIN_TOKEN_DOMAIN + credential_id.encode(), "sha256")
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
