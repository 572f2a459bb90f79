"""A subscription's secret: made or taken at creation, sealed with the subscription's own data
key (wrapped by the master key, as every subject key is), opened to sign each delivery.

It is a credential, so it is neither in the log nor in a projection, and no log line names it:
the row in `subscription_secrets` is the only copy, sealed. A master key rotation re-wraps the
data key (key_store.rotate), and the sealed secret opens under the new master key unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from lead_ledger.ledger import key_store, subject_keys
from lead_ledger.ledger.connection import Connection

SECRET_BYTES: Final = 32  # a generated secret: 256 bits, URL-safe base64 (43 characters)
SIGNATURE_PREFIX: Final = "sha256="

INSERT_SEALED: Final = """
INSERT INTO subscription_secrets (subscription_id, account_id, sealed) VALUES ($1, $2, $3)
"""
SELECT_SEALED: Final = "SELECT sealed FROM subscription_secrets WHERE subscription_id = $1"
DELETE_SEALED: Final = "DELETE FROM subscription_secrets WHERE subscription_id = $1"


class SecretMissingError(LookupError):
    """No secret opens for this subscription (deleted, or its key gone): nothing may be sent."""


def subject_of(subscription_id: int) -> str:
    """The subject the secret is sealed for (its own key in subject_keys)."""
    return f"subscription-{subscription_id}"


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def signature(secret: str, body: bytes) -> str:
    """The X-Ledger-Signature value: HMAC-SHA256 of the exact body bytes, in hex."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_PREFIX}{digest}"


async def store_secret(
    conn: Connection, account_id: int, subscription_id: int, secret: str
) -> None:
    """Seal and store the secret, in the caller's (creating) transaction."""
    subject = subject_of(subscription_id)
    keys = await key_store.keys_for_writing(conn, key_store.master_key(), account_id, [subject])
    sealed = subject_keys.seal(keys[subject], secret.encode(), subject)
    await conn.execute(INSERT_SEALED, subscription_id, account_id, sealed)


async def open_secret(conn: Connection, subscription_id: int) -> str:
    """The secret to sign with; SecretMissingError when there is none to open."""
    subject = subject_of(subscription_id)
    sealed: bytes | None = await conn.fetchval(SELECT_SEALED, subscription_id)
    keys = await key_store.keys_for_reading(conn, key_store.master_key(), [subject])
    if sealed is None or subject not in keys:
        raise SecretMissingError(subscription_id)
    return subject_keys.open_sealed(keys[subject], sealed, subject).decode()
