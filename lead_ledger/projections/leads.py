"""Lead views: the live leads, the archive, and the contact index used for duplicate checks."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Final, assert_never

import msgspec

from lead_ledger.ledger.envelope import RecordedEvent
from lead_ledger.ledger.events import (
    FIELD_NAMES,
    DomainEvent,
    FieldValue,
    LeadArchived,
    LeadArchiveRemoved,
    LeadArchiveSynced,
    LeadDeleted,
    LeadDncCleared,
    LeadErased,
    LeadEvent,
    LeadFields,
    LeadInserted,
    LeadMarkedDnc,
    LeadReassigned,
    LeadRestored,
    LeadUpdated,
)
from lead_ledger.ledger.row_times import LeadTimes, changed, entered
from lead_ledger.projections.base import Projection, Row, Rows

LEAD_META: Final = ("lead_id", "account_id", "campaign_id", "version")
LEAD_TIMES: Final = ("entry_at", "modified_at")
LEAD_COLUMNS: Final = (*LEAD_META, "dedupe_keys", *FIELD_NAMES, *LEAD_TIMES)
ARCHIVE_COLUMNS: Final = (*LEAD_COLUMNS, "source_version", "archive_version", "archived_at")
_LEAD_EVENTS: Final = frozenset(
    {
        LeadInserted,
        LeadUpdated,
        LeadReassigned,
        LeadArchived,
        LeadArchiveSynced,
        LeadDeleted,
        LeadRestored,
        LeadArchiveRemoved,
        LeadErased,
        LeadMarkedDnc,
        LeadDncCleared,
    }
)


def fields_row(fields: LeadFields) -> Row:
    return msgspec.structs.asdict(fields)  # every field, in declaration order (C, not a loop)


def _column_value(field: str, value: FieldValue) -> object:
    # Diffs travel as JSON: an expiry comes back as ISO text and must be a timestamp again.
    if field == "expires_at" and isinstance(value, str):
        return msgspec.convert(value, datetime)
    return value


def _lead_id(event: DomainEvent) -> int:
    lead_id = getattr(event, "lead_id", None)
    if not isinstance(lead_id, int):
        raise TypeError(f"{type(event).__name__} is not a lead event")
    return lead_id


class LeadsProjection(Projection):
    name: ClassVar[str] = "leads"
    table: ClassVar[str] = "leads"
    key: ClassVar[str] = "lead_id"
    columns: ClassVar[tuple[str, ...]] = LEAD_COLUMNS
    jsonb_columns: ClassVar[frozenset[str]] = frozenset({"crm", "extra"})
    handles: ClassVar[frozenset[type]] = _LEAD_EVENTS

    def key_of(self, event: DomainEvent) -> tuple[int, bool]:
        return _lead_id(event), isinstance(event, LeadInserted)

    def fold(self, rows: Rows, recorded: RecordedEvent, event: DomainEvent) -> None:
        if not isinstance(event, LeadEvent):
            return  # not a lead event: `handles` keeps these away
        version = recorded.stream_version
        match event:
            case LeadInserted() | LeadRestored():
                fields = event.fields if isinstance(event, LeadInserted) else event.snapshot
                times = entered(event, recorded.recorded_at)
                rows.put(
                    event.lead_id,
                    {
                        "lead_id": event.lead_id,
                        "account_id": event.account_id,
                        "campaign_id": event.campaign_id,
                        "version": version,
                        "dedupe_keys": event.dedupe_keys,
                        **fields_row(fields),
                        "entry_at": times.entry_at,
                        "modified_at": times.modified_at,
                    },
                )
            case LeadDeleted() | LeadErased():
                rows.drop(event.lead_id)
            case (
                LeadUpdated()
                | LeadReassigned()
                | LeadArchived()
                | LeadArchiveSynced()
                | LeadArchiveRemoved()
                | LeadMarkedDnc()
                | LeadDncCleared()
            ):
                row = rows.get(event.lead_id)
                if row is None:
                    return  # not live: archive bookkeeping of a deleted lead
                row = dict(row, version=version)
                if isinstance(event, LeadUpdated):
                    for change in event.changes:
                        row[change.field] = _column_value(change.field, change.new)
                    if event.dedupe_keys is not None:
                        row["dedupe_keys"] = event.dedupe_keys
                elif isinstance(event, LeadReassigned):
                    row["agent"] = event.to_agent
                times = changed(
                    LeadTimes(row["entry_at"], row["modified_at"]), event, recorded.recorded_at
                )
                row["entry_at"], row["modified_at"] = times
                rows.put(event.lead_id, row)
            case _:
                assert_never(event)


class ArchiveProjection(Projection):
    name: ClassVar[str] = "lead_archive"
    table: ClassVar[str] = "lead_archive"
    key: ClassVar[str] = "lead_id"
    columns: ClassVar[tuple[str, ...]] = ARCHIVE_COLUMNS
    jsonb_columns: ClassVar[frozenset[str]] = frozenset({"crm", "extra"})
    handles: ClassVar[frozenset[type]] = frozenset(
        {LeadArchived, LeadArchiveSynced, LeadArchiveRemoved, LeadErased}
    )

    def key_of(self, event: DomainEvent) -> tuple[int, bool]:
        return _lead_id(event), False

    def fold(self, rows: Rows, recorded: RecordedEvent, event: DomainEvent) -> None:
        if not isinstance(event, LeadEvent):
            return  # not a lead event: `handles` keeps these away
        match event:
            case LeadArchived() | LeadArchiveSynced():
                rows.put(
                    event.lead_id,
                    {
                        "lead_id": event.lead_id,
                        "account_id": event.account_id,
                        "campaign_id": event.campaign_id,
                        "version": event.source_version,
                        "dedupe_keys": event.dedupe_keys,
                        **fields_row(event.snapshot),
                        "entry_at": event.entry_at,
                        "modified_at": event.modified_at,
                        "source_version": event.source_version,
                        "archive_version": recorded.stream_version,
                        "archived_at": recorded.recorded_at,
                    },
                )
            case LeadArchiveRemoved() | LeadErased():
                rows.drop(event.lead_id)
            case (
                LeadInserted()
                | LeadUpdated()
                | LeadReassigned()
                | LeadDeleted()
                | LeadRestored()
                | LeadMarkedDnc()
                | LeadDncCleared()
            ):
                pass  # the live lead's life leaves its archive copy as it was
            case _:
                assert_never(event)


class ContactsProjection(Projection):
    """(campaign, kind, value) -> lead: phones by dedupe key, user_data, reference, CRM fields."""

    name: ClassVar[str] = "contacts"
    table: ClassVar[str] = "contacts"
    key: ClassVar[str] = "lead_id"
    columns: ClassVar[tuple[str, ...]] = ("lead_id", "campaign_id", "kind", "value")
    handles: ClassVar[frozenset[type]] = frozenset(
        {LeadInserted, LeadUpdated, LeadDeleted, LeadRestored, LeadErased}
    )

    def key_of(self, event: DomainEvent) -> tuple[int, bool]:
        return _lead_id(event), isinstance(event, LeadInserted)

    def fold(self, rows: Rows, _recorded: RecordedEvent, event: DomainEvent) -> None:
        if not isinstance(event, LeadEvent):
            return  # not a lead event: `handles` keeps these away
        match event:
            case LeadInserted():
                rows.set_group(
                    event.lead_id,
                    contact_rows(event.lead_id, event.campaign_id, event.fields, event.dedupe_keys),
                )
            case LeadRestored():
                rows.set_group(
                    event.lead_id,
                    contact_rows(
                        event.lead_id, event.campaign_id, event.snapshot, event.dedupe_keys
                    ),
                )
            case LeadDeleted() | LeadErased():
                rows.drop(event.lead_id)
            case LeadUpdated():
                group = rows.group(event.lead_id)
                if not group:
                    return
                rows.set_group(event.lead_id, _updated_contacts(group, event))
            case (
                LeadReassigned()
                | LeadArchived()
                | LeadArchiveSynced()
                | LeadArchiveRemoved()
                | LeadMarkedDnc()
                | LeadDncCleared()
            ):
                pass  # no contact changes: an agent is not a contact, an archive copy not live
            case _:
                assert_never(event)


def contact_rows(
    lead_id: int, campaign_id: int, fields: LeadFields, dedupe_keys: list[str]
) -> list[Row]:
    entries = [("phone", key) for key in dedupe_keys]
    if fields.user_data:
        entries.append(("user_data", fields.user_data))
    if fields.reference_number:
        entries.append(("reference_number", fields.reference_number))
    entries.extend((f"crm:{name}", value) for name, value in sorted(fields.crm.items()) if value)
    return [
        {"lead_id": lead_id, "campaign_id": campaign_id, "kind": kind, "value": value}
        for kind, value in entries
    ]


def _updated_contacts(group: list[Row], event: LeadUpdated) -> list[Row]:
    lead_id, campaign_id = group[0]["lead_id"], group[0]["campaign_id"]
    by_kind: dict[str, list[str]] = {}
    for row in group:
        by_kind.setdefault(row["kind"], []).append(row["value"])
    if event.dedupe_keys is not None:
        by_kind["phone"] = list(event.dedupe_keys)
    for change in event.changes:
        if change.field in ("user_data", "reference_number"):
            by_kind[change.field] = [str(change.new)] if change.new else []
        elif change.field == "crm" and isinstance(change.new, dict):
            for kind in [k for k in by_kind if k.startswith("crm:")]:
                del by_kind[kind]
            for name, value in sorted(change.new.items()):
                if value:
                    by_kind[f"crm:{name}"] = [str(value)]
    return [
        {"lead_id": lead_id, "campaign_id": campaign_id, "kind": kind, "value": value}
        for kind in sorted(by_kind, key=_kind_order)
        for value in by_kind[kind]
    ]


def _kind_order(kind: str) -> tuple[int, str]:
    return ({"phone": 0, "user_data": 1, "reference_number": 2}.get(kind, 3), kind)
