"""Failed logins throttled per username and per client address, counted in PostgreSQL.

An attempt is counted before its password is checked, so concurrent guesses (on one server or
several) can never check more passwords than the limit: the count is taken and compared in one
statement. A login that succeeds gives its attempt back, and so does one refused as over the
limit (it checked nothing), so only failures use up the limit. While a subject is over its
limit, even the right password is not checked: that is what makes guessing slow. Windows are
fixed (`window_seconds` long); the wait is what is left of the one in which the limit was
reached.

A right password checked by many requests at once would still fill the limit while they are
in flight (a client whose workers all log in together), so `SharedChecks` makes the requests of
one process that carry the same username and password from one address share one check: one
attempt, one scrypt, one answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final, TypeVar, cast

import msgspec

from lead_ledger.ledger.connection import Connection

# The wait is what is left of the window, rounded up after a tenth of a second more (never more
# than the window): a client that sleeps exactly that long (its timer may fire a little early,
# its clock may differ from the database's by a few milliseconds) lands in the next window, not
# at the end of this one.
# One statement for every subject of the attempt, so the attempts of two requests that share a
# subject are counted in a single order (subjects sorted): no deadlock, no attempt uncounted.
# Like the rate limits, counted with synchronous_commit off (a crash may forget a few).
COUNT_ATTEMPT: Final = """
INSERT INTO login_throttle AS t (subject, window_start, attempts)
SELECT subject, to_timestamp(floor(extract(epoch FROM statement_timestamp()) / $2) * $2), 1
FROM unnest($1::text[]) AS subject,
     (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
ORDER BY subject
ON CONFLICT (subject, window_start) DO UPDATE SET attempts = t.attempts + 1
RETURNING subject, window_start, attempts,
    least($2, ceil(extract(epoch FROM window_start + make_interval(secs => $2)
                                      - clock_timestamp()) + 0.1))::int AS wait_seconds
"""
GIVE_BACK: Final = """
UPDATE login_throttle SET attempts = attempts - 1
WHERE subject = ANY($1::text[]) AND window_start = $2 AND attempts > 0
"""
FORGET_OLD_WINDOWS: Final = """
DELETE FROM login_throttle WHERE window_start < clock_timestamp() - make_interval(secs => $1 * 2)
"""
_CLEANUP_CHANCE: Final = 0.01


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Failed logins allowed per window, per username and per client address."""

    per_username: int
    per_address: int
    window_seconds: int


class Admitted(msgspec.Struct, frozen=True):
    """The attempt is counted; `give_back` it when the password turns out right."""

    subjects: list[str]
    window_start: datetime


class Throttled(msgspec.Struct, frozen=True):
    """Over a limit: try again in `wait_seconds` (at least 1)."""

    wait_seconds: int


def _subject(scope: str, kind: str, value: str) -> str:
    return f"{scope}:{kind}:{hashlib.sha256(value.encode()).hexdigest()}"


async def admit(
    conn: Connection, limits: Limits, *, username: str, address: str | None
) -> Admitted | Throttled:
    """Count one login attempt of `username` from `address`. A username is counted once across
    the APIs it logs in to (Flexydial's generate-token and Vicidial's non-agent API check the
    same users' passwords), as an address is: each API a limit of its own would multiply the
    guesses a window allows.

    Run it outside a transaction: the window rows stay locked until the statement's own
    transaction ends, and every attempt on the same username goes through its row.
    """
    if conn.is_in_transaction():
        raise RuntimeError("login attempts must be counted outside a transaction")
    limit_of = {_subject("any", "username", username): limits.per_username}
    if address is not None:
        limit_of[_subject("any", "address", address)] = limits.per_address
    rows = await conn.fetch(COUNT_ATTEMPT, list(limit_of), limits.window_seconds)
    if random.random() < _CLEANUP_CHANCE:  # noqa: S311 - housekeeping, not security
        await conn.execute(FORGET_OLD_WINDOWS, limits.window_seconds)
    admitted = Admitted(list(limit_of), rows[0]["window_start"])
    waits = [row["wait_seconds"] for row in rows if row["attempts"] > limit_of[row["subject"]]]
    if waits:
        # Refused unchecked: its count goes back, so a burst of refused attempts does not
        # hold the subjects over their limits once the failures that put them there expire,
        # nor fill the address's limit.
        await give_back(conn, admitted)
        return Throttled(max(1, *waits))
    return admitted


async def give_back(conn: Connection, admitted: Admitted) -> None:
    """A login succeeded: its attempt no longer counts against the username or the address."""
    await conn.execute(GIVE_BACK, admitted.subjects, admitted.window_start)


T = TypeVar("T")


class SharedChecks:
    """Logins with the same username, password and client address in flight in this process
    share one check: the first starts it, the others wait for its answer. The check runs as a
    task of its own (on a connection of its own), so a caller that gives up does not cancel
    the others'. Keyed by the username, the address and a keyed hash of the password under a
    secret of this process, never the password; nothing is kept once the check ends."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)
        self._running: dict[tuple[str, str, str, bytes], asyncio.Future[Any]] = {}

    async def run(
        self,
        scope: str,
        username: str,
        password: str,
        address: str | None,
        check: Callable[[], Awaitable[T]],
    ) -> T:
        """`check()`'s answer, shared with the calls of the same `scope` (what the answer
        is), username, password and client address running at the same time: a call from
        another address is counted against its own address's limit."""
        key = (
            scope,
            username,
            address or "",
            hmac.digest(self._secret, password.encode(errors="surrogateescape"), "sha256"),
        )
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(check())
            self._running[key] = running
            running.add_done_callback(lambda done: self._finished(key, done))
        return cast("T", await asyncio.shield(running))

    def _finished(self, key: tuple[str, str, str, bytes], done: asyncio.Future[Any]) -> None:
        self._running.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: every caller may have gone
