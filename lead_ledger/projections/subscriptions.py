"""The webhook subscriptions view: one row per subscription, keyed by its id (folded from
`subscription-<id>`). A deleted subscription has no row. Where delivery has got to is not here
(service/subscriptions/delivery.py keeps it apart), so a rebuild of this view sends nothing."""

from __future__ import annotations

from typing import ClassVar

from lead_ledger.ledger.envelope import RecordedEvent
from lead_ledger.ledger.events import DomainEvent
from lead_ledger.ledger.subscription_events import (
    SubscriptionChanged,
    SubscriptionCreated,
    SubscriptionDeleted,
    SubscriptionPaused,
    SubscriptionResumed,
    SubscriptionSuspended,
)
from lead_ledger.projections.base import Projection, Rows

_EVENTS = (
    SubscriptionCreated,
    SubscriptionChanged,
    SubscriptionPaused,
    SubscriptionResumed,
    SubscriptionSuspended,
    SubscriptionDeleted,
)
_STATES: dict[type, str] = {
    SubscriptionPaused: "paused",
    SubscriptionResumed: "active",
    SubscriptionSuspended: "suspended",
}


class SubscriptionsProjection(Projection):
    name: ClassVar[str] = "subscriptions"
    table: ClassVar[str] = "subscriptions"
    key: ClassVar[str] = "subscription_id"
    columns: ClassVar[tuple[str, ...]] = (
        "subscription_id",
        "account_id",
        "url",
        "event_types",
        "campaign_id",
        "state",
        "created_at",
        "changed_at",
        "version",
    )
    jsonb_columns: ClassVar[frozenset[str]] = frozenset({"event_types"})
    handles: ClassVar[frozenset[type]] = frozenset(_EVENTS)

    def key_of(self, event: DomainEvent) -> tuple[int, bool]:
        if not isinstance(event, _EVENTS):
            raise TypeError(f"{type(event).__name__} is not a subscription event")
        return event.subscription_id, isinstance(event, SubscriptionCreated)

    def fold(self, rows: Rows, recorded: RecordedEvent, event: DomainEvent) -> None:
        if not isinstance(event, _EVENTS):
            return
        at = recorded.recorded_at
        touched = {"changed_at": at, "version": recorded.stream_version}
        if isinstance(event, SubscriptionCreated):
            rows.put(
                event.subscription_id,
                {
                    "subscription_id": event.subscription_id,
                    "account_id": event.account_id,
                    "url": event.url,
                    "event_types": event.event_types,
                    "campaign_id": event.campaign_id,
                    "state": "active",
                    "created_at": at,
                }
                | touched,
            )
            return
        if isinstance(event, SubscriptionDeleted):
            rows.drop(event.subscription_id)
            return
        row = rows.get(event.subscription_id)
        if row is None:
            return
        if isinstance(event, SubscriptionChanged):
            changed = {"url": event.url, "event_types": event.event_types}
        else:
            changed = {"state": _STATES[type(event)]}
        rows.put(event.subscription_id, row | changed | touched)
