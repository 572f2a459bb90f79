"""Webhook subscription events (stream subscription-<id>): created, changed, paused, resumed,
suspended after a day of failed deliveries, and deleted (docs/subscriptions.md).

The secret a delivery is signed with is not in these events: it is a credential, kept sealed
beside the log (service/subscriptions/secrets.py), and never shown again. Where a subscription
has got to (its checkpoint) and who delivers it (its lease) are coordination state, not events.
Standalone (no import of events.py) so that events.py can import these into DomainEvent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypeAlias

import msgspec

SubscriptionState = Literal["active", "paused", "suspended"]


class _SubscriptionEvent(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True
):
    pass


class SubscriptionCreated(_SubscriptionEvent, frozen=True, kw_only=True, tag="SubscriptionCreated"):
    """Deliver the account's lead events of `event_types` (None: every lead event), of one
    campaign (`campaign_id`) or all, to `url`, from the feed position after this event."""

    subscription_id: int
    account_id: int
    url: str
    event_types: list[str] | None = None
    campaign_id: int | None = None


class SubscriptionChanged(_SubscriptionEvent, frozen=True, kw_only=True, tag="SubscriptionChanged"):
    """The target and the types from now on (both, as they now are); `changed` names which."""

    subscription_id: int
    account_id: int
    url: str
    event_types: list[str] | None = None
    changed: list[str] = []


class SubscriptionPaused(_SubscriptionEvent, frozen=True, kw_only=True, tag="SubscriptionPaused"):
    """Nothing is delivered until it is resumed; the checkpoint stays where it was."""

    subscription_id: int
    account_id: int


class SubscriptionResumed(_SubscriptionEvent, frozen=True, kw_only=True, tag="SubscriptionResumed"):
    """Delivery goes on from the checkpoint (after a pause or a suspension)."""

    subscription_id: int
    account_id: int


class SubscriptionSuspended(
    _SubscriptionEvent, frozen=True, kw_only=True, tag="SubscriptionSuspended"
):
    """Every delivery since `failing_since` failed, for longer than the service waits: nothing
    more is tried until the subscription is resumed. `error` is the last attempt's."""

    subscription_id: int
    account_id: int
    failing_since: datetime
    attempts: int
    error: str | None = None


class SubscriptionDeleted(_SubscriptionEvent, frozen=True, kw_only=True, tag="SubscriptionDeleted"):
    subscription_id: int
    account_id: int


SubscriptionEvent: TypeAlias = (
    SubscriptionCreated
    | SubscriptionChanged
    | SubscriptionPaused
    | SubscriptionResumed
    | SubscriptionSuspended
    | SubscriptionDeleted
)


def stream_of_subscription(subscription_id: int) -> str:
    return f"subscription-{subscription_id}"
