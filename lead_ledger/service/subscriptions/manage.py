"""Subscriptions as the native API manages them: create, list, read, change, delete, and the
recent delivery attempts. Every change is an event on `subscription-<id>`, appended with the
version the view holds (the row is locked first, so two changes of one subscription take
turns); the delivery row and the sealed secret are written in the same transaction.

Every read and change is scoped to one account: another account's subscription is reported
exactly like a missing one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Final, Literal

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import NO_STREAM
from lead_ledger.ledger.errors import LedgerError
from lead_ledger.ledger.events import LEAD_EVENT_TYPES, tag_of
from lead_ledger.ledger.subscription_events import (
    SubscriptionChanged,
    SubscriptionCreated,
    SubscriptionDeleted,
    SubscriptionEvent,
    SubscriptionPaused,
    SubscriptionResumed,
    SubscriptionState,
    stream_of_subscription,
)
from lead_ledger.service import callbacks
from lead_ledger.service.subscriptions import signing
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context, record, stream_append

# What a subscription may ask for: lead events (an erasure of a lead is one, LeadErased).
LEAD_TYPE_NAMES: Final = tuple(sorted(tag_of(t) for t in LEAD_EVENT_TYPES))
MAX_URL_LENGTH: Final = 2048
MAX_ATTEMPTS_LISTED: Final = 100

NEXT_ID: Final = "SELECT nextval('subscription_ids')"
INSERT_DELIVERY: Final = """
INSERT INTO subscription_delivery (subscription_id, account_id, checkpoint) VALUES ($1, $2, $3)
"""
# The columns of a subscription as shown: its view row, its campaign's name, where delivery is.
_VIEW: Final = """
s.subscription_id, s.url, s.event_types, s.campaign_id, c.name AS campaign, s.state,
s.created_at, s.changed_at, coalesce(d.checkpoint, 0) AS checkpoint,
coalesce(d.failures, 0) AS failures, d.failing_since, d.next_attempt_at
FROM subscriptions s
LEFT JOIN campaigns c ON c.campaign_id = s.campaign_id
LEFT JOIN subscription_delivery d ON d.subscription_id = s.subscription_id
"""
SELECT_ONE: Final = f"SELECT {_VIEW} WHERE s.account_id = $1 AND s.subscription_id = $2"
SELECT_PAGE: Final = f"""
SELECT {_VIEW} WHERE s.account_id = $1 AND s.subscription_id > $2
ORDER BY s.subscription_id LIMIT $3
"""
LOCK_ROW: Final = """
SELECT url, event_types, state, version FROM subscriptions
WHERE account_id = $1 AND subscription_id = $2
FOR UPDATE
"""
# A resumed subscription is tried at once, its failures forgotten, by whichever process leases
# it next; the batch in flight (if any) stays, so it is sent again under its delivery id.
RESET_DELIVERY: Final = """
UPDATE subscription_delivery
SET failures = 0, failing_since = NULL, next_attempt_at = now(), lease_owner = NULL,
    lease_until = NULL
WHERE subscription_id = $1
"""
# New types make a new batch: the one in flight was chosen by the old ones, and a delivery id
# must always name the same events. The lease goes too: a step still sending the old batch then
# cannot move the checkpoint past events that only the new types match (its update is for the
# lease holder only); the next claim reads them again under the new types.
FORGET_BATCH: Final = """
UPDATE subscription_delivery
SET batch_last = NULL, delivery_id = NULL, lease_owner = NULL, lease_until = NULL
WHERE subscription_id = $1
"""
DELETE_DELIVERY: Final = "DELETE FROM subscription_delivery WHERE subscription_id = $1"
DELETE_ATTEMPTS: Final = "DELETE FROM subscription_attempts WHERE subscription_id = $1"
SELECT_ATTEMPTS: Final = """
SELECT a.delivery_id, a.attempted_at, a.events, a.first_position, a.last_position,
       a.status_code, a.error, a.latency_ms, a.delivered
FROM subscription_attempts a
JOIN subscriptions s ON s.subscription_id = a.subscription_id
WHERE s.account_id = $1 AND a.subscription_id = $2
ORDER BY a.attempt_id DESC
LIMIT $3
"""

Fault = Literal["url", "event_types", "campaign", "secret", "state"]


class SubscriptionError(LedgerError):
    """A request refused: `field` names the body member at fault."""

    def __init__(self, message: str, *, field: Fault) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class SubscriptionNotFoundError(LookupError):
    """No such subscription in this account."""


class SubscriptionView(msgspec.Struct, frozen=True, kw_only=True):
    """A subscription as shown: its configuration, its state, and where delivery has got to
    (`checkpoint`: the feed position of the last event delivered or passed over)."""

    subscription_id: int
    url: str
    event_types: list[str] | None
    campaign: str | None
    campaign_id: int | None
    state: SubscriptionState
    created_at: datetime
    changed_at: datetime
    checkpoint: int
    failures: int
    failing_since: datetime | None
    next_attempt_at: datetime | None


class CreatedSubscription(SubscriptionView, frozen=True, kw_only=True):
    """The subscription as created, with its secret: shown this once, never again."""

    secret: str


class SubscriptionPage(msgspec.Struct, frozen=True, kw_only=True):
    subscriptions: list[SubscriptionView]
    next_after: int | None  # the last subscription_id of this page when there is another


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One POST of a batch: its delivery id (the same for every retry of the batch), the feed
    positions it held, what the receiver answered (or why nothing did) and how long it took."""

    delivery_id: uuid.UUID
    attempted_at: datetime
    events: int
    first_position: int
    last_position: int
    status_code: int | None
    error: str | None
    latency_ms: float
    delivered: bool


class Attempts(msgspec.Struct, frozen=True, kw_only=True):
    subscription_id: int
    attempts: list[Attempt]


async def check_url(url: str, *, allow_private: bool) -> None:
    """The callback rule (service/callbacks.py) for a subscription's target, or
    SubscriptionError naming why it can never be called."""
    if len(url) > MAX_URL_LENGTH:
        raise SubscriptionError(f"url is longer than {MAX_URL_LENGTH} characters", field="url")
    try:
        refused = await callbacks.refusal(url, allow_private=allow_private)
    except OSError as error:  # at creation a host must resolve: nothing would be delivered
        raise SubscriptionError(str(error), field="url") from error
    except ValueError as error:  # a host name no resolver takes (a label over 63 characters)
        raise SubscriptionError(f"url has no valid host name: {error}", field="url") from error
    if refused is not None:
        raise SubscriptionError(refused, field="url")


def check_types(event_types: Sequence[str] | None) -> list[str] | None:
    """The types as stored (None: every lead event), or SubscriptionError naming the unknown."""
    if event_types is None:
        return None
    if not event_types:
        raise SubscriptionError(
            "event_types is empty: give null for every lead event", field="event_types"
        )
    unknown = sorted(set(event_types) - set(LEAD_TYPE_NAMES))
    if unknown:
        raise SubscriptionError(
            f"not a lead event type: {', '.join(unknown)}; the types are"
            f" {', '.join(LEAD_TYPE_NAMES)}",
            field="event_types",
        )
    return sorted(set(event_types))


async def create(
    conn: Connection,
    ctx: Context,
    account_id: int,
    *,
    url: str,
    event_types: list[str] | None,
    campaign_id: int | None,
    secret: str,
) -> CreatedSubscription:
    """Record SubscriptionCreated; its delivery starts after the event's own feed position."""
    async with write_transaction(conn):
        subscription_id: int = await conn.fetchval(NEXT_ID)
        event = SubscriptionCreated(
            subscription_id=subscription_id,
            account_id=account_id,
            url=url,
            event_types=event_types,
            campaign_id=campaign_id,
        )
        result = await _append(conn, ctx, account_id, subscription_id, NO_STREAM, [event])
        position = result[-1]
        await conn.execute(INSERT_DELIVERY, subscription_id, account_id, position)
        await signing.store_secret(conn, account_id, subscription_id, secret)
        view = await _view(conn, account_id, subscription_id)
    if view is None:  # written just above, in this transaction
        raise SubscriptionNotFoundError(subscription_id)
    return CreatedSubscription(**msgspec.structs.asdict(view), secret=secret)


async def get(conn: Connection, account_id: int, subscription_id: int) -> SubscriptionView:
    view = await _view(conn, account_id, subscription_id)
    if view is None:
        raise SubscriptionNotFoundError(subscription_id)
    return view


async def page(conn: Connection, account_id: int, *, after: int, limit: int) -> SubscriptionPage:
    rows = await conn.fetch(SELECT_PAGE, account_id, after, limit + 1)
    views = [_view_of(row) for row in rows[:limit]]
    more = len(rows) > limit
    return SubscriptionPage(
        subscriptions=views, next_after=views[-1].subscription_id if more else None
    )


async def change(
    conn: Connection,
    ctx: Context,
    account_id: int,
    subscription_id: int,
    *,
    url: str | None = None,
    event_types: list[str] | msgspec.UnsetType | None = msgspec.UNSET,
    state: Literal["active", "paused"] | None = None,
) -> SubscriptionView:
    """Change the target or types, pause or resume (also a suspended subscription)."""
    async with write_transaction(conn):
        row = await conn.fetchrow(LOCK_ROW, account_id, subscription_id)
        if row is None:
            raise SubscriptionNotFoundError(subscription_id)
        current_types = msgspec.json.decode(row["event_types"])
        events: list[SubscriptionEvent] = []
        new_url = row["url"] if url is None else url
        new_types = current_types if isinstance(event_types, msgspec.UnsetType) else event_types
        changed: list[str] = []
        if new_url != row["url"]:
            changed.append("url")
        if new_types != current_types:
            changed.append("event_types")
            await conn.execute(FORGET_BATCH, subscription_id)
        if changed:
            events.append(
                SubscriptionChanged(
                    subscription_id=subscription_id,
                    account_id=account_id,
                    url=new_url,
                    event_types=new_types,
                    changed=changed,
                )
            )
        if state == "paused" and row["state"] != "paused":
            events.append(
                SubscriptionPaused(subscription_id=subscription_id, account_id=account_id)
            )
        if state == "active" and row["state"] != "active":
            events.append(
                SubscriptionResumed(subscription_id=subscription_id, account_id=account_id)
            )
            await conn.execute(RESET_DELIVERY, subscription_id)
        if events:
            await _append(conn, ctx, account_id, subscription_id, row["version"], events)
        view = await _view(conn, account_id, subscription_id)
    if view is None:
        raise SubscriptionNotFoundError(subscription_id)
    return view


async def delete(conn: Connection, ctx: Context, account_id: int, subscription_id: int) -> None:
    """Record SubscriptionDeleted; its checkpoint, lease, secret and attempts go with it."""
    async with write_transaction(conn):
        row = await conn.fetchrow(LOCK_ROW, account_id, subscription_id)
        if row is None:
            raise SubscriptionNotFoundError(subscription_id)
        event = SubscriptionDeleted(subscription_id=subscription_id, account_id=account_id)
        await _append(conn, ctx, account_id, subscription_id, row["version"], [event])
        for statement in (DELETE_DELIVERY, signing.DELETE_SEALED, DELETE_ATTEMPTS):
            await conn.execute(statement, subscription_id)


async def attempts(
    conn: Connection, account_id: int, subscription_id: int, *, limit: int
) -> Attempts:
    """The most recent attempts first; SubscriptionNotFoundError for another account's."""
    if await _view(conn, account_id, subscription_id) is None:
        raise SubscriptionNotFoundError(subscription_id)
    rows = await conn.fetch(SELECT_ATTEMPTS, account_id, subscription_id, limit)
    return Attempts(
        subscription_id=subscription_id,
        attempts=[msgspec.convert(dict(row), Attempt) for row in rows],
    )


async def _append(
    conn: Connection,
    ctx: Context,
    account_id: int,
    subscription_id: int,
    version: int,
    events: Sequence[SubscriptionEvent],
) -> list[int]:
    """Append in the caller's write transaction; the positions of the events written."""
    stream = stream_of_subscription(subscription_id)
    result = await record(
        conn, [stream_append(ctx, stream, version, events, account_id=account_id)]
    )
    return [event.position for event in result.events]


async def _view(conn: Connection, account_id: int, subscription_id: int) -> SubscriptionView | None:
    row = await conn.fetchrow(SELECT_ONE, account_id, subscription_id)
    return None if row is None else _view_of(row)


def _view_of(row: asyncpg.Record) -> SubscriptionView:
    data = dict(row)
    data["event_types"] = msgspec.json.decode(data["event_types"])
    return msgspec.convert(data, SubscriptionView)
