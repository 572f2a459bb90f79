"""Credentials: per account and per dialect, stored as SHA-256, compared in constant time."""

from __future__ import annotations

import hmac

import msgspec
from aiohttp import web

from lead_ledger.api.keys import POOL, SETTINGS
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.credentials import key_digest as key_digest  # noqa: PLC0414 - re-exported
from lead_ledger.ledger.credentials import new_key as new_key  # noqa: PLC0414 - re-exported
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import Dialect

SELECT_CREDENTIAL = """
SELECT c.account_id, c.credential_id, c.key_sha256, a.name AS account_name
FROM credentials c JOIN accounts a USING (account_id)
WHERE c.key_sha256 = $1 AND c.dialect = $2 AND NOT c.revoked
"""

# Whether a principal found earlier still holds: its credential neither revoked nor gone.
SELECT_CREDENTIAL_LIVE = """
SELECT true
FROM credentials c JOIN accounts a USING (account_id)
WHERE c.account_id = $1 AND c.credential_id = $2 AND c.dialect = $3 AND NOT c.revoked
"""


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The caller a credential names: its account, the credential and the dialect spoken."""

    account_id: int
    account_name: str
    credential_id: str
    dialect: Dialect

    @property
    def actor(self) -> Actor:
        """Who the events this caller causes name."""
        return Actor(
            dialect=self.dialect, account_id=self.account_id, credential_id=self.credential_id
        )


async def find_principal(request: web.Request, key: str, dialect: Dialect) -> Principal | None:
    """The principal of a key of `dialect`, or None. A key of another dialect is no key."""
    if not key:
        return None
    digest = key_digest(key)
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(SELECT_CREDENTIAL, digest, dialect)
    # The lookup is by hash; the comparison below keeps the final check constant-time anyway.
    if row is None or not hmac.compare_digest(row["key_sha256"], digest):
        return None
    return Principal(
        account_id=row["account_id"],
        account_name=row["account_name"],
        credential_id=row["credential_id"],
        dialect=dialect,
    )


async def still_valid(conn: Connection, principal: Principal) -> bool:
    """Whether `principal`'s credential would still be accepted: what a request checks once,
    for something that goes on after it (an event stream) to check again."""
    found = await conn.fetchval(
        SELECT_CREDENTIAL_LIVE, principal.account_id, principal.credential_id, principal.dialect
    )
    return found is not None


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_admin(request: web.Request) -> bool:
    """True when the bearer token is LEDGER_ADMIN_TOKEN (the admin API is off without one)."""
    expected = request.app[SETTINGS].admin_token
    token = bearer_token(request)
    if not expected or token is None:
        return False
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, so a 500).
    return hmac.compare_digest(
        token.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )
