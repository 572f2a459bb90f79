"""Delivering subscriptions: each one's matching feed events, in feed order, at least once, in
signed batches, by one process at a time.

A process leases the active subscriptions that are due and not leased by another live process
(`subscription_delivery.lease_owner/lease_until`, SKIP LOCKED, renewed on every pass), so any
number of `serve` processes share the work and a killed one's subscriptions are taken over when
its lease expires. The lease holder alone moves the checkpoint (every update names it), and only
after a 2xx; a process that lost its lease mid-POST finds its update matching no row.

A batch is named before it is sent (`batch_last`, `delivery_id`, stored first): a retry, by this
process or the next holder, re-reads the feed from the checkpoint up to `batch_last` (stable:
it is below the visibility fence) and sends it under the same X-Ledger-Delivery. Failures back
off exponentially (capped); when they have gone on for `suspend_after` (by the injected clock),
SubscriptionSuspended is recorded and nothing more is tried until the subscription is resumed.

This reads the log (the feed), never a projection's change, and keeps its checkpoint outside
every projection, so rebuilding or verifying projections cannot make it send anything again.
HTTP is injected (`SignedPost`): aiohttp lives in the api layer.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import asyncpg
import msgspec
import structlog

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import Actor, RecordedEvent
from lead_ledger.ledger.feed import CHANNEL, FeedEntry
from lead_ledger.ledger.opening import shown_records
from lead_ledger.ledger.store import read_feed
from lead_ledger.ledger.subscription_events import SubscriptionSuspended, stream_of_subscription
from lead_ledger.service import callbacks
from lead_ledger.service.reads import shown_entry
from lead_ledger.service.subscriptions import signing
from lead_ledger.service.subscriptions.manage import LEAD_TYPE_NAMES
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.worker import DATABASE_UNAVAILABLE, listening, pause, sleep_until
from lead_ledger.service.writer import Context, record, stream_append

log = structlog.get_logger(__name__)

# (url, JSON body, headers) -> HTTP status; raises OSError/TimeoutError when nothing answered.
SignedPost = Callable[[str, bytes, Mapping[str, str]], Awaitable[int]]
Clock = Callable[[], datetime]

BATCH_SIZE: Final = 100
SCAN_PAGE: Final = 1000  # feed events read per query while looking for matching ones
SCAN_PAGES: Final = 10  # per pass: a subscription that matches little still moves on in steps
_LEAD_TYPES: Final = frozenset(LEAD_TYPE_NAMES)
_ENCODER: Final = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Policy:
    """How delivery paces itself; the defaults are the service's (docs/subscriptions.md)."""

    lease_seconds: float = 30.0  # longer than a POST may take (10 s) plus its bookkeeping
    poll_seconds: float = 1.0  # the backstop when no NOTIFY arrives (see ledger/feed.py)
    # Every commit that appends notifies: under a steady stream of them, a pass that found
    # nothing to send is followed by the next one no sooner than this, so a busy ledger pays a
    # few claims a second instead of one per commit. A quiet one pays no wait.
    min_pass_seconds: float = 0.05
    backoff_seconds: float = 1.0  # 1 s, 2 s, 4 s, ... capped
    max_backoff_seconds: float = 300.0
    suspend_after: timedelta = timedelta(hours=24)
    claim_limit: int = 20  # subscriptions one process leases at once
    allow_private: bool = False


class Body(msgspec.Struct, frozen=True, kw_only=True):
    """What a receiver gets: the entries as GET /v1/events shows them, in feed order."""

    subscription_id: int
    delivery_id: uuid.UUID
    events: list[FeedEntry]


class _CampaignOf(msgspec.Struct, frozen=True):
    """The campaign a lead event names, when it names one (inserts, archives, restores)."""

    campaign_id: int | None = None


_CAMPAIGN_OF: Final = msgspec.json.Decoder(_CampaignOf)

# Due, active, and not held by another live process. The row lock (SKIP LOCKED) keeps two
# processes from leasing one subscription in the same instant; the lease keeps them apart after.
# Unleased first, then the longest since last leased: with more due subscriptions than a claim
# takes, each pass takes the ones the last passes did not (an idle subscription stays due, so
# an order by id would take the same first ones for ever).
CLAIM: Final = """
WITH due AS (
    SELECT d.subscription_id FROM subscription_delivery d
    JOIN subscriptions s ON s.subscription_id = d.subscription_id
    WHERE s.state = 'active' AND d.next_attempt_at <= now()
      AND (d.lease_owner IS NULL OR d.lease_owner = $1 OR d.lease_until < now())
    ORDER BY d.lease_until NULLS FIRST, d.subscription_id
    LIMIT $3
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE subscription_delivery d
SET lease_owner = $1, lease_until = now() + make_interval(secs => $2)
FROM due, subscriptions s
WHERE d.subscription_id = due.subscription_id AND s.subscription_id = d.subscription_id
RETURNING d.subscription_id, d.account_id, d.checkpoint, d.batch_last, d.delivery_id,
          d.failures, s.url, s.event_types, s.campaign_id
"""
# Asked after the feed was read and before anything is sent: a pause (or a change of types, or
# a deletion) that committed after the claim stops the step here. Any event the batch holds was
# read before this statement began, so before a pause this statement did not see: nothing
# written after a pause is sent until the subscription is resumed.
STILL_OURS: Final = """
SELECT 1 FROM subscription_delivery d
JOIN subscriptions s ON s.subscription_id = d.subscription_id
WHERE d.subscription_id = $1 AND d.lease_owner = $2 AND s.state = 'active'
"""
MARK_IN_FLIGHT: Final = """
UPDATE subscription_delivery SET batch_last = $3, delivery_id = $4
WHERE subscription_id = $1 AND lease_owner = $2
"""
# Also for a stretch of events none of which match: the checkpoint moves past them, unsent.
DELIVERED: Final = """
UPDATE subscription_delivery
SET checkpoint = $3, batch_last = NULL, delivery_id = NULL, failures = 0, failing_since = NULL,
    next_attempt_at = now()
WHERE subscription_id = $1 AND lease_owner = $2
"""
FAILED: Final = """
UPDATE subscription_delivery
SET failures = failures + 1, failing_since = coalesce(failing_since, $3),
    next_attempt_at = now() + make_interval(secs => $4)
WHERE subscription_id = $1 AND lease_owner = $2
RETURNING failures, failing_since
"""
INSERT_ATTEMPT: Final = """
INSERT INTO subscription_attempts (subscription_id, delivery_id, events, first_position,
                                   last_position, status_code, error, latency_ms, delivered)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING attempt_id
"""
# The subscription's attempts older than its KEEP_ATTEMPTS newest (none when it has fewer).
PRUNE_ATTEMPTS: Final = """
DELETE FROM subscription_attempts
WHERE subscription_id = $1 AND attempt_id <= (
    SELECT attempt_id FROM subscription_attempts WHERE subscription_id = $1
    ORDER BY attempt_id DESC OFFSET $2 LIMIT 1)
"""
# Pruned when an attempt's (global) id is a multiple of this: about one attempt in 50 of each
# subscription pays for the DELETE, and none keeps more than KEEP_ATTEMPTS for long.
PRUNE_EVERY: Final = 50
KEEP_ATTEMPTS: Final = 200
RELEASE: Final = """
UPDATE subscription_delivery SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1
"""
LOCK_ACTIVE: Final = """
SELECT version FROM subscriptions WHERE subscription_id = $1 AND state = 'active' FOR UPDATE
"""
# A lead's campaign never changes: it is the one its first event (LeadInserted) names.
LEAD_CAMPAIGNS: Final = """
SELECT stream_id, (data->>'campaign_id')::bigint AS campaign_id
FROM events WHERE stream_id = ANY($1::text[]) AND stream_version = 1
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    subscription_id: int
    account_id: int
    checkpoint: int
    batch_last: int | None
    delivery_id: uuid.UUID | None
    failures: int
    url: str
    event_types: frozenset[str]
    campaign_id: int | None


@dataclass(frozen=True, slots=True)
class Batch:
    events: list[RecordedEvent]  # the matching ones, to send
    last: int  # the position of the last event looked at: the checkpoint once delivered


class Deliverer:
    """One process's delivery of every subscription it leases."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        post: SignedPost,
        *,
        owner: str,
        clock: Clock,
        policy: Policy | None = None,
    ) -> None:
        self.pool = pool
        self.post = post
        self.owner = owner
        self.clock = clock
        self.policy = policy or Policy()
        # A secret never changes once made: opened once per process, not once per batch.
        self._secrets: dict[int, str] = {}

    async def run(self, stop: asyncio.Event, *, listen_url: str | None = None) -> None:
        """Deliver until `stop` is set; woken by every append, polling as the backstop. On the
        way out the leases are released, so another process takes over at once."""
        loop = asyncio.get_running_loop()
        try:
            async with listening(self.pool, CHANNEL, listen_url) as wake:
                while not stop.is_set():
                    started = loop.time()
                    try:
                        progressed = await self.pass_once()
                    except DATABASE_UNAVAILABLE as error:
                        log.warning(
                            "subscription_delivery_error",
                            owner=self.owner,
                            error=type(error).__name__,
                        )
                        progressed = False
                    except Exception:  # the loop must outlive any one pass
                        log.exception("subscription_delivery_error", owner=self.owner)
                        progressed = False
                    if not progressed:
                        await sleep_until(wake, stop, self.policy.poll_seconds)
                        await pause(stop, started + self.policy.min_pass_seconds - loop.time())
        finally:
            async with self.pool.acquire() as conn:
                await conn.execute(RELEASE, self.owner)

    async def pass_once(self) -> bool:
        """Lease what is due, and move each leased subscription on by one batch (at once);
        whether any moved."""
        claimed = await self.claim()
        # One subscription's failure (its events do not open, the database hiccups) is its
        # own: the pass goes on, and waits for every step before the next claim.
        moved = await asyncio.gather(*(self.step(c) for c in claimed), return_exceptions=True)
        for step, result in zip(claimed, moved, strict=True):
            if isinstance(result, BaseException):
                log.error(
                    "subscription_step_failed",
                    subscription_id=step.subscription_id,
                    owner=self.owner,
                    exc_info=result,
                )
        return any(result is True for result in moved)

    async def claim(self) -> list[Claimed]:
        """Lease the subscriptions that are due and held by no other live process."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                CLAIM, self.owner, self.policy.lease_seconds, self.policy.claim_limit
            )
        return [_claimed(row) for row in rows]

    async def step(self, claimed: Claimed) -> bool:
        """Send the claimed subscription's next batch; whether its checkpoint moved."""
        async with self.pool.acquire() as conn:
            batch = await next_batch(conn, claimed)
            if batch is None:
                return False
            if not batch.events:
                status = await conn.execute(
                    DELIVERED, claimed.subscription_id, self.owner, batch.last
                )
                return status.endswith(" 1")
            if await conn.fetchval(STILL_OURS, claimed.subscription_id, self.owner) is None:
                return False  # paused, changed or deleted since the claim
            delivery_id = claimed.delivery_id
            if claimed.batch_last is None or delivery_id is None:
                delivery_id = uuid.uuid4()
                status = await conn.execute(
                    MARK_IN_FLIGHT, claimed.subscription_id, self.owner, batch.last, delivery_id
                )
                if not status.endswith(" 1"):
                    return False  # the lease went to another process
            try:
                secret = await self._secret(conn, claimed.subscription_id)
            except signing.SecretMissingError:
                return False  # deleted meanwhile
            entries = [shown_entry(e) for e in await shown_records(conn, batch.events)]
        body = _ENCODER.encode(
            Body(subscription_id=claimed.subscription_id, delivery_id=delivery_id, events=entries)
        )
        return await self._send(claimed, batch, delivery_id, body, secret)

    async def _secret(self, conn: Connection, subscription_id: int) -> str:
        secret = self._secrets.get(subscription_id)
        if secret is None:
            secret = await signing.open_secret(conn, subscription_id)
            self._secrets[subscription_id] = secret
        return secret

    async def _send(
        self, claimed: Claimed, batch: Batch, delivery_id: uuid.UUID, body: bytes, secret: str
    ) -> bool:
        headers = {
            "Content-Type": "application/json",
            "X-Ledger-Subscription": str(claimed.subscription_id),
            "X-Ledger-Delivery": str(delivery_id),
            "X-Ledger-Signature": signing.signature(secret, body),
        }
        status: int | None = None
        started = time.perf_counter()
        try:
            error = await callbacks.refusal(claimed.url, allow_private=self.policy.allow_private)
            refused = error is not None
            if error is None:
                status = await self.post(claimed.url, body, headers)
                error = None if 200 <= status < 300 else f"answered {status}"
            logged = error
        except (OSError, TimeoutError, ValueError) as failure:
            # ValueError: a host name the resolver does not take. A failure, retried, never a
            # crash.
            error, logged = callbacks.failure_texts(failure)
            refused = False
        latency_ms = (time.perf_counter() - started) * 1000
        delivered = error is None
        attempt = (
            claimed.subscription_id,
            delivery_id,
            len(batch.events),
            batch.events[0].position,
            batch.events[-1].position,
            status,
            error,
            latency_ms,
            delivered,
        )
        log.info(
            "subscription_attempted",
            subscription_id=claimed.subscription_id,
            delivery_id=str(delivery_id),
            events=len(batch.events),
            status=status,
            error=logged,
            latency_ms=round(latency_ms, 1),
        )
        async with self.pool.acquire() as conn:
            if delivered:
                async with conn.transaction():
                    await self._attempted(conn, attempt)
                    done = await conn.execute(
                        DELIVERED, claimed.subscription_id, self.owner, batch.last
                    )
                return done.endswith(" 1")
            failures, failing_since = await self._failed(conn, claimed, attempt)
            if failures is None or failing_since is None:
                return False  # the lease went to another process
            # A target the rule refuses stays refused: suspended at once, as a callback is
            # abandoned at once (until the setting or the URL changes and it is resumed).
            if refused or self.clock() - failing_since >= self.policy.suspend_after:
                await self._suspend(conn, claimed, failing_since, failures, (error, logged))
        return False

    async def _attempted(self, conn: Connection, attempt: Sequence[object]) -> None:
        attempt_id: int = await conn.fetchval(INSERT_ATTEMPT, *attempt)
        if attempt_id % PRUNE_EVERY == 0:
            await conn.execute(PRUNE_ATTEMPTS, attempt[0], KEEP_ATTEMPTS)

    async def _failed(
        self, conn: Connection, claimed: Claimed, attempt: Sequence[object]
    ) -> tuple[int | None, datetime | None]:
        delay = min(
            self.policy.backoff_seconds * 2**claimed.failures, self.policy.max_backoff_seconds
        )
        async with conn.transaction():
            await self._attempted(conn, attempt)
            row = await conn.fetchrow(
                FAILED, claimed.subscription_id, self.owner, self.clock(), delay
            )
        if row is None:
            return None, None
        return row["failures"], row["failing_since"]

    async def _suspend(
        self,
        conn: Connection,
        claimed: Claimed,
        failing_since: datetime,
        failures: int,
        errors: tuple[str | None, str | None],
    ) -> None:
        """Suspend the subscription; `errors` is the last failure as recorded and as logged
        (callbacks.failure_texts)."""
        error, logged = errors
        ctx = Context(actor=Actor(dialect="system", account_id=claimed.account_id))
        event = SubscriptionSuspended(
            subscription_id=claimed.subscription_id,
            account_id=claimed.account_id,
            failing_since=failing_since,
            attempts=failures,
            error=error,
        )
        async with write_transaction(conn):
            version = await conn.fetchval(LOCK_ACTIVE, claimed.subscription_id)
            if version is None:
                return  # paused, suspended or deleted meanwhile
            stream = stream_of_subscription(claimed.subscription_id)
            await record(
                conn, [stream_append(ctx, stream, version, [event], account_id=claimed.account_id)]
            )
        log.warning(
            "subscription_suspended",
            subscription_id=claimed.subscription_id,
            attempts=failures,
            error=logged,
        )


async def next_batch(conn: Connection, claimed: Claimed) -> Batch | None:
    """The batch after the checkpoint: the one in flight again (up to `batch_last`), or the
    next up to BATCH_SIZE matching events. None when the feed has nothing new."""
    after = claimed.checkpoint
    matched: list[RecordedEvent] = []
    last: int | None = None
    for _ in range(SCAN_PAGES):
        page = await read_feed(conn, after=after, limit=SCAN_PAGE, account_id=claimed.account_id)
        if not page:
            break
        wanted = await _matching(conn, claimed, page)
        for event in page:
            last = event.position
            if event.position in wanted:
                matched.append(event)
            if last == claimed.batch_last or (
                claimed.batch_last is None and len(matched) == BATCH_SIZE
            ):
                return Batch(matched, last)
        after = page[-1].position
        if len(page) < SCAN_PAGE:
            break
    return None if last is None else Batch(matched, last)


async def _matching(conn: Connection, claimed: Claimed, page: list[RecordedEvent]) -> set[int]:
    """The positions of the page's events the subscription asks for."""
    typed = [e for e in page if e.type in claimed.event_types]
    if claimed.campaign_id is None or not typed:
        return {e.position for e in typed}
    campaigns = {e.stream_id: _CAMPAIGN_OF.decode(e.data).campaign_id for e in typed}
    unknown = [stream for stream, campaign in campaigns.items() if campaign is None]
    if unknown:
        for row in await conn.fetch(LEAD_CAMPAIGNS, unknown):
            campaigns[row["stream_id"]] = row["campaign_id"]
    return {e.position for e in typed if campaigns[e.stream_id] == claimed.campaign_id}


def _claimed(row: asyncpg.Record) -> Claimed:
    types = msgspec.json.decode(row["event_types"])
    return Claimed(
        subscription_id=row["subscription_id"],
        account_id=row["account_id"],
        checkpoint=row["checkpoint"],
        batch_last=row["batch_last"],
        delivery_id=row["delivery_id"],
        failures=row["failures"],
        url=row["url"],
        event_types=_LEAD_TYPES if types is None else frozenset(types),
        campaign_id=row["campaign_id"],
    )
