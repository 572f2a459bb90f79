"""Who calls Vicidial's non-agent API: `user` and `pass` on every request, checked against the
account users (the ones Flexydial's generate-token logs in), with failed logins throttled as
Flexydial's are.

Vicidial sends the password with every call, and scrypt costs tens of milliseconds of a core
by design, so a login that succeeded is remembered for a minute (`VerifiedLogins`), keyed by
the username and a keyed hash of the password under a secret of this process: never the
password itself, and nothing that outlives the process. A failed login is never remembered.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Final

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.service import login_throttle
from lead_ledger.service.account_reads import authenticate_user, find_account
from lead_ledger.service.inputs import NUL

DIALECT: Final = "vicidial"
REMEMBERED_SECONDS: Final = 60.0
MAX_REMEMBERED: Final = 10_000


class ApiUser(msgspec.Struct, frozen=True, kw_only=True):
    """A user who logged in, and their account."""

    username: str
    account_id: int


class VerifiedLogins:
    """Logins that succeeded of late, so that a client calling many times a second pays for
    scrypt once a minute, not on every call."""

    def __init__(self, seconds: float = REMEMBERED_SECONDS) -> None:
        self._seconds = seconds
        self._secret = secrets.token_bytes(32)
        self._known: dict[tuple[str, bytes], tuple[ApiUser, float]] = {}

    def _key(self, username: str, password: str) -> tuple[str, bytes]:
        return username, hmac.digest(self._secret, password.encode(), hashlib.sha256)

    def get(self, username: str, password: str) -> ApiUser | None:
        found = self._known.get(self._key(username, password))
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def remember(self, username: str, password: str, user: ApiUser) -> None:
        if len(self._known) >= MAX_REMEMBERED:
            self._known.clear()  # rare, and the next calls only pay scrypt again
        self._known[self._key(username, password)] = (user, time.monotonic() + self._seconds)


async def log_in(
    pool: asyncpg.Pool,
    username: str,
    password: str,
    *,
    address: str | None,
    limits: login_throttle.Limits,
    verified: VerifiedLogins,
    shared: login_throttle.SharedChecks,
) -> ApiUser | login_throttle.Throttled | None:
    """The user, None when the username and password do not match, or Throttled (the password
    unchecked) when the username or the address has failed too often of late. Calls with the
    same username and password at once share one check (`shared`)."""
    known = verified.get(username, password)
    if known is not None:
        return known

    async def check() -> ApiUser | login_throttle.Throttled | None:
        async with pool.acquire() as conn:
            return await _check(conn, username, password, address, limits, verified)

    return await shared.run(DIALECT, username, password, address, check)


async def _check(
    conn: Connection,
    username: str,
    password: str,
    address: str | None,
    limits: login_throttle.Limits,
    verified: VerifiedLogins,
) -> ApiUser | login_throttle.Throttled | None:
    attempt = await login_throttle.admit(conn, limits, username=username, address=address)
    if isinstance(attempt, login_throttle.Throttled):
        return attempt
    if not username or NUL in username or NUL in password:
        return None
    user = await authenticate_user(conn, username, password)
    account = None if user is None else await find_account(conn, user.account)
    if account is None:
        return None
    await login_throttle.give_back(conn, attempt)
    found = ApiUser(username=username, account_id=account.id)
    verified.remember(username, password, found)
    return found
