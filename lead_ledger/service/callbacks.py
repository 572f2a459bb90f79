"""The callback outbox dispatcher: deliver each job's callback, with retries and backoff.

A due row is leased by pushing its `next_attempt_at` past the HTTP timeout (SKIP LOCKED, one
short transaction), so no transaction stays open across a slow receiver. Each attempt is a
CallbackAttempted event; after the last one, CallbackAbandoned. Delivery is at least once: a
dispatcher that dies between the POST and the record retries it after the lease.

HTTP is injected (`Post`): aiohttp lives in the api layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import SplitResult, urlsplit

import asyncpg
import msgspec
import structlog

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import ANY_VERSION, Actor
from lead_ledger.ledger.job_events import CallbackAbandoned, CallbackAttempted, stream_of_job
from lead_ledger.metrics import CALLBACK_ATTEMPTS
from lead_ledger.service.jobs import CALLBACK_CHANNEL
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.worker import DATABASE_UNAVAILABLE, listening, sleep_until
from lead_ledger.service.writer import Context, record, stream_append

log = structlog.get_logger(__name__)

# (url, JSON body) -> HTTP status; raises OSError/TimeoutError (or the client's own errors,
# which the poster should wrap as OSError) when nothing answered.
Post = Callable[[str, bytes], Awaitable[int]]

MAX_ATTEMPTS: Final = 8
BACKOFF_SECONDS: Final = 1.0  # 1 s, 2 s, 4 s, ... capped
MAX_BACKOFF_SECONDS: Final = 600.0
LEASE_SECONDS: Final = 60.0  # longer than the POST timeout (10 s)
NOT_HTTP: Final = "callback URL must be http or https with a host"
# Names the setting: the uploader who meets it on a test system learns the switch at once.
PRIVATE_TARGET: Final = (
    "callback target is a private address; set LEDGER_CALLBACK_ALLOW_PRIVATE=1 to allow it"
)

CLAIM_DUE: Final = """
WITH due AS (
    SELECT job_id FROM callback_outbox
    WHERE delivered_at IS NULL AND abandoned_at IS NULL AND next_attempt_at <= now()
    ORDER BY next_attempt_at, job_id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE callback_outbox o SET next_attempt_at = now() + make_interval(secs => $2)
FROM due WHERE o.job_id = due.job_id
RETURNING o.job_id, o.account_id, o.url, o.body, o.attempts
"""
# Once delivered or abandoned, the body (which may hold rejected rows as sent) is not kept:
# the job's events hold the outcome, sealed (docs/erasure.md).
DELIVERED: Final = """
UPDATE callback_outbox SET attempts = $2, delivered_at = now(), body = '{}' WHERE job_id = $1
"""
RETRY: Final = """
UPDATE callback_outbox SET attempts = $2, next_attempt_at = now() + make_interval(secs => $3)
WHERE job_id = $1
"""
ABANDONED: Final = """
UPDATE callback_outbox SET attempts = $2, abandoned_at = now(), body = '{}' WHERE job_id = $1
"""


class Due(msgspec.Struct, frozen=True, kw_only=True):
    job_id: int
    account_id: int
    url: str
    body: str  # the JSON as built (callback_outbox.body is text: migration 0021)
    attempts: int


async def refusal(url: str, *, allow_private: bool) -> str | None:
    """Why the URL may never be called, or None. Every address the host resolves to is checked.

    Raises OSError when the host does not resolve now: that may pass (a DNS outage, a record not
    yet published), so it is a failed attempt, retried, not a refusal."""
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed [ of an IPv6 address, a host NFKC changes
        return NOT_HTTP
    malformed = _malformed(parts)
    if malformed is not None or allow_private:
        return malformed
    host = str(parts.hostname)  # _malformed saw that there is one
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, parts.port or 443, type=socket.SOCK_STREAM
        )
    except OSError as error:
        raise OSError(f"cannot resolve callback host {host}: {error}") from error
    for *_, sockaddr in infos:
        if forbidden_address(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])):
            return PRIVATE_TARGET
    return None


def _malformed(parts: SplitResult) -> str | None:
    """Why no client could ever call this URL, whatever the address rules: checked before
    them, so that a setting which allows private targets still refuses an impossible one."""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return NOT_HTTP
    try:
        port = parts.port
    except ValueError:  # beyond 65535, or not a number
        port = 0
    if port == 0:
        return "callback URL's port must be 1 to 65535"
    if not _host(parts.hostname):
        return "callback URL's host is neither a host name nor an address"
    return None


def _host(host: str) -> bool:
    """An IP address, or a host name of 1-63 character labels (IDNA, the encoding reversible;
    `_` allowed, as private networks' service names hold it), at most 253 in all."""
    with contextlib.suppress(ValueError):
        return bool(ipaddress.ip_address(host.split("%", 1)[0]))
    try:
        name = host.removesuffix(".").encode("idna")
        name.decode("idna")
    except UnicodeError:
        return False
    return len(name) <= _MAX_HOST_NAME and all(
        _HOST_LABEL(label) for label in name.decode().split(".")
    )


_MAX_HOST_NAME: Final = 253
_HOST_LABEL: Final = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)").fullmatch


def failure_texts(failure: BaseException) -> tuple[str, str]:
    """A failed delivery's error as its record keeps it (the account's own view of its target:
    the client's message, which may quote the URL) and as a log line holds it (the kind of
    failure only: logs hold no URL, host or credential in one)."""
    cause = failure.__cause__ or failure
    return str(failure) or type(failure).__name__, type(cause).__name__


# IPv6 prefixes that carry an IPv4 address in their last 32 bits: NAT64's well-known prefix
# (RFC 6052) and its local-use one (RFC 8215).
_NAT64: Final = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)


def forbidden_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a callback may not reach this address (unless private targets are allowed):
    any address that is not global (private, shared 100.64.0.0/10, loopback, link-local,
    documentation, reserved...), multicast, and an IPv6 address that carries such an IPv4 one
    (IPv4-mapped, 6to4, Teredo, NAT64), which a host or relay may deliver to that IPv4 host."""
    if (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
    ):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        return any(forbidden_address(inner) for inner in _carried_ipv4(address))
    return False


def _carried_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    carried = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    if any(address in network for network in _NAT64):
        carried.append(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
    return [inner for inner in carried if inner is not None]


async def dispatch_due(
    pool: asyncpg.Pool,
    post: Post,
    *,
    allow_private: bool,
    max_attempts: int = MAX_ATTEMPTS,
    backoff_seconds: float = BACKOFF_SECONDS,
    limit: int = 10,
) -> int:
    """Attempt every due callback (up to `limit`, concurrently); returns how many."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(CLAIM_DUE, limit, LEASE_SECONDS)
    due = [Due(**dict(row)) for row in rows]
    await asyncio.gather(
        *(_attempt(pool, post, d, allow_private, max_attempts, backoff_seconds) for d in due)
    )
    return len(due)


async def _attempt(
    pool: asyncpg.Pool,
    post: Post,
    due: Due,
    allow_private: bool,
    max_attempts: int,
    backoff_seconds: float,
) -> None:
    attempt = due.attempts + 1
    status: int | None = None
    try:
        error = logged = await refusal(due.url, allow_private=allow_private)
        # A refused target stays refused: no retries. Anything else that fails (DNS, a
        # connection, a timeout, a 5xx) is retried with the backoff.
        final = error is not None
        if error is None:
            status = await post(due.url, due.body.encode())
    except (OSError, TimeoutError, ValueError) as failure:
        # ValueError: a URL the HTTP client cannot take although the rule above did. A failed
        # attempt, retried and in the end abandoned, never a dispatcher that fails for ever.
        error, logged = failure_texts(failure)
        final = False
    delivered = status is not None and 200 <= status < 300
    event = CallbackAttempted(
        job_id=due.job_id,
        attempt=attempt,
        url=due.url,
        status_code=status,
        error=error,
        delivered=delivered,
    )
    async with pool.acquire() as conn:
        await _record(conn, due, event, final or attempt >= max_attempts, backoff_seconds)
    outcome = "delivered" if delivered else "refused" if final else "failed"
    CALLBACK_ATTEMPTS.labels(outcome).inc()
    # A refused callback is a setting to fix, not weather: it is worth an operator's attention.
    level = log.warning if final else log.info
    level("callback_attempted", job_id=due.job_id, attempt=attempt, status=status, error=logged)


async def _record(
    conn: Connection, due: Due, event: CallbackAttempted, last: bool, backoff_seconds: float
) -> None:
    ctx = Context(actor=Actor(dialect="system", account_id=due.account_id), job_id=str(due.job_id))
    events: list[CallbackAttempted | CallbackAbandoned] = [event]
    async with write_transaction(conn):
        if event.delivered:
            await conn.execute(DELIVERED, due.job_id, event.attempt)
        elif last:
            events.append(CallbackAbandoned(job_id=due.job_id, attempts=event.attempt))
            await conn.execute(ABANDONED, due.job_id, event.attempt)
        else:
            delay = min(backoff_seconds * 2 ** (event.attempt - 1), MAX_BACKOFF_SECONDS)
            await conn.execute(RETRY, due.job_id, event.attempt, delay)
        stream = stream_of_job(due.job_id)
        await record(
            conn, [stream_append(ctx, stream, ANY_VERSION, events, account_id=due.account_id)]
        )


async def run_dispatcher(
    pool: asyncpg.Pool,
    stop: asyncio.Event,
    post: Post,
    *,
    allow_private: bool,
    poll_seconds: float = 1.0,
    max_attempts: int = MAX_ATTEMPTS,
    backoff_seconds: float = BACKOFF_SECONDS,
    listen_url: str | None = None,
) -> None:
    """Deliver callbacks until `stop` is set; woken by jobs that complete, polls for retries."""
    async with listening(pool, CALLBACK_CHANNEL, listen_url) as wake:
        while not stop.is_set():
            try:
                count = await dispatch_due(
                    pool,
                    post,
                    allow_private=allow_private,
                    max_attempts=max_attempts,
                    backoff_seconds=backoff_seconds,
                )
            except DATABASE_UNAVAILABLE as error:
                log.warning("callback_dispatcher_error", error=type(error).__name__)
                count = 0
            except Exception:  # the loop must outlive any one delivery
                log.exception("callback_dispatcher_error")
                count = 0
            if count == 0:
                await sleep_until(wake, stop, poll_seconds)
