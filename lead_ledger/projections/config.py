"""Configuration views, one per table, all keyed by account id (folded from `account-<id>`)."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from lead_ledger.ledger.envelope import RecordedEvent
from lead_ledger.ledger.events import (
    AccountCreated,
    AgentAdded,
    CampaignCreated,
    CampaignStarted,
    CampaignStopped,
    CampaignUpdated,
    CredentialIssued,
    CredentialRevoked,
    DomainEvent,
    SettingsChanged,
    SkillAdded,
    UserCreated,
)
from lead_ledger.projections.base import Projection, Row, Rows


class _AccountKeyed(Projection):
    key: ClassVar[str] = "account_id"

    def key_of(self, event: DomainEvent) -> tuple[int, bool]:
        account_id = getattr(event, "account_id", None)
        if not isinstance(account_id, int):
            raise TypeError(f"{type(event).__name__} names no account")
        return account_id, isinstance(event, AccountCreated)


class AccountsProjection(_AccountKeyed):
    name: ClassVar[str] = "accounts"
    table: ClassVar[str] = "accounts"
    columns: ClassVar[tuple[str, ...]] = ("account_id", "name", "created_at")
    handles: ClassVar[frozenset[type]] = frozenset({AccountCreated})

    def fold(self, rows: Rows, recorded: RecordedEvent, event: DomainEvent) -> None:
        if isinstance(event, AccountCreated):
            rows.put(
                event.account_id,
                {
                    "account_id": event.account_id,
                    "name": event.name,
                    "created_at": recorded.recorded_at,
                },
            )


class SettingsProjection(_AccountKeyed):
    name: ClassVar[str] = "settings"
    table: ClassVar[str] = "settings"
    columns: ClassVar[tuple[str, ...]] = (
        "account_id",
        "api_authentication",
        "default_region",
        "office_hours",
        "rate_limits",
        "updated_at",
    )
    jsonb_columns: ClassVar[frozenset[str]] = frozenset({"office_hours", "rate_limits"})
    handles: ClassVar[frozenset[type]] = frozenset({AccountCreated, SettingsChanged})

    def fold(self, rows: Rows, recorded: RecordedEvent, event: DomainEvent) -> None:
        if isinstance(event, AccountCreated | SettingsChanged):
            settings = event.settings
            rows.put(
                event.account_id,
                {
                    "account_id": event.account_id,
                    "api_authentication": settings.api_authentication,
                    "default_region": settings.default_region,
                    "office_hours": msgspec.to_builtins(settings.office_hours),
                    "rate_limits": msgspec.to_builtins(settings.rate_limits),
                    "updated_at": recorded.recorded_at,
                },
            )


class CredentialsProjection(_AccountKeyed):
    name: ClassVar[str] = "credentials"
    table: ClassVar[str] = "credentials"
    columns: ClassVar[tuple[str, ...]] = (
        "account_id",
        "credential_id",
        "dialect",
        "key_sha256",
        "revoked",
        "issued_at",
        "username",
    )
    handles: ClassVar[frozenset[type]] = frozenset({CredentialIssued, CredentialRevoked})

    def fold(self, rows: Rows, recorded: RecordedEvent, event: DomainEvent) -> None:
        if isinstance(event, CredentialIssued):
            row: Row = {
                "account_id": event.account_id,
                "credential_id": event.credential_id,
                "dialect": event.dialect,
                "key_sha256": event.key_sha256,
                "revoked": False,
                "issued_at": recorded.recorded_at,
                "username": event.username,
            }
            rows.add(event.account_id, row)
        elif isinstance(event, CredentialRevoked):
            rows.set_group(
                event.account_id,
                [
                    dict(r, revoked=True) if r["credential_id"] == event.credential_id else r
                    for r in rows.group(event.account_id)
                ],
            )


class UsersProjection(_AccountKeyed):
    name: ClassVar[str] = "users"
    table: ClassVar[str] = "users"
    columns: ClassVar[tuple[str, ...]] = ("account_id", "username", "password_hash", "created_at")
    handles: ClassVar[frozenset[type]] = frozenset({UserCreated})

    def fold(self, rows: Rows, recorded: RecordedEvent, event: DomainEvent) -> None:
        if isinstance(event, UserCreated):
            row: Row = {
                "account_id": event.account_id,
                "username": event.username,
                "password_hash": event.password_hash,
                "created_at": recorded.recorded_at,
            }
            rows.add(event.account_id, row)


class AgentsProjection(_AccountKeyed):
    name: ClassVar[str] = "agents"
    table: ClassVar[str] = "agents"
    columns: ClassVar[tuple[str, ...]] = ("account_id", "agent_id", "name", "added_at")
    handles: ClassVar[frozenset[type]] = frozenset({AgentAdded})

    def fold(self, rows: Rows, recorded: RecordedEvent, event: DomainEvent) -> None:
        if isinstance(event, AgentAdded):
            row: Row = {
                "account_id": event.account_id,
                "agent_id": event.agent_id,
                "name": event.name,
                "added_at": recorded.recorded_at,
            }
            rows.add(event.account_id, row)


class SkillsProjection(_AccountKeyed):
    name: ClassVar[str] = "skills"
    table: ClassVar[str] = "skills"
    columns: ClassVar[tuple[str, ...]] = ("account_id", "name", "added_at")
    handles: ClassVar[frozenset[type]] = frozenset({SkillAdded})

    def fold(self, rows: Rows, recorded: RecordedEvent, event: DomainEvent) -> None:
        if isinstance(event, SkillAdded):
            row: Row = {
                "account_id": event.account_id,
                "name": event.name,
                "added_at": recorded.recorded_at,
            }
            rows.add(event.account_id, row)


class CampaignsProjection(_AccountKeyed):
    name: ClassVar[str] = "campaigns"
    table: ClassVar[str] = "campaigns"
    columns: ClassVar[tuple[str, ...]] = (
        "account_id",
        "campaign_id",
        "name",
        "direction",
        "assignment",
        "dial_mode",
        "state",
        "crm_fields",
        "vicidial_campaign",
        "created_at",
        "updated_at",
    )
    handles: ClassVar[frozenset[type]] = frozenset(
        {CampaignCreated, CampaignUpdated, CampaignStarted, CampaignStopped}
    )

    def fold(self, rows: Rows, recorded: RecordedEvent, event: DomainEvent) -> None:
        at = recorded.recorded_at
        if isinstance(event, CampaignCreated):
            config = event.config
            row: Row = {
                "account_id": event.account_id,
                "campaign_id": event.campaign_id,
                "name": config.name,
                "direction": config.direction,
                "assignment": config.assignment,
                "dial_mode": config.dial_mode,
                "state": config.state,
                "crm_fields": config.crm_fields,
                "vicidial_campaign": config.vicidial_campaign,
                "created_at": at,
                "updated_at": at,
            }
            rows.add(event.account_id, row)
            return
        if not isinstance(event, CampaignUpdated | CampaignStarted | CampaignStopped):
            return
        changes: Row = {"updated_at": at}
        if isinstance(event, CampaignUpdated):
            config = event.config
            changes |= {
                "name": config.name,
                "direction": config.direction,
                "assignment": config.assignment,
                "dial_mode": config.dial_mode,
                "state": config.state,
                "crm_fields": config.crm_fields,
                "vicidial_campaign": config.vicidial_campaign,
            }
        else:
            changes["state"] = "running" if isinstance(event, CampaignStarted) else "stopped"
        rows.set_group(
            event.account_id,
            [
                dict(r, **changes) if r["campaign_id"] == event.campaign_id else r
                for r in rows.group(event.account_id)
            ],
        )
