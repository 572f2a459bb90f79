"""The lead aggregate: `decide` turns a command and the current state into events, `evolve`
folds events into state. Pure: no I/O, no clock, no random ids; ids and facts read from the
database (duplicates found under the campaign lock) are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import assert_never

import msgspec

from lead_ledger.ledger.events import (
    FIELD_NAMES,
    LEAD_EVENT_TYPES,
    FieldChange,
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
from lead_ledger.ledger.phones import dedupe_keys


class ArchiveCopy(msgspec.Struct, frozen=True, kw_only=True):
    snapshot: LeadFields
    # The snapshot's own keys: a restore must not take the keys of numbers changed since.
    dedupe_keys: list[str]
    source_version: int  # the lead version the snapshot was taken from
    archive_version: int  # the stream version of the event that wrote this copy


class LeadState(msgspec.Struct, frozen=True, kw_only=True):
    lead_id: int
    account_id: int
    campaign_id: int
    version: int
    fields: LeadFields | None  # None while the lead is not live (deleted or archived away)
    dedupe_keys: list[str]
    archive: ArchiveCopy | None = None
    # The do-not-call entries that mark the live lead, each with its expiry (None: never).
    dnc_marks: dict[int, datetime | None] = {}

    @property
    def live(self) -> bool:
        return self.fields is not None

    def dnc_at(self, at: datetime) -> bool:
        """Whether the lead reads `DNC` at `at`: some entry marks it and has not expired."""
        return any(expires is None or expires > at for expires in self.dnc_marks.values())


class LeadError(ValueError):
    """A command that cannot apply to the lead as it is (not live, not archived, ...)."""


# --- evolve ---------------------------------------------------------------------------------------


def evolve(state: LeadState | None, event: LeadEvent) -> LeadState:  # noqa: PLR0911, C901
    """The state after one more event. Versions count events, so they match the stream's."""
    if not isinstance(event, LEAD_EVENT_TYPES):
        # Typed away, yet a caller that read another stream's event through a cast must get a
        # refusal like any other, not a fold of the wrong thing.
        raise LeadError(f"unknown lead event {type(event).__name__}")
    if isinstance(event, LeadInserted):
        return LeadState(
            lead_id=event.lead_id,
            account_id=event.account_id,
            campaign_id=event.campaign_id,
            version=1,
            fields=event.fields,
            dedupe_keys=event.dedupe_keys,
        )
    if state is None:
        raise LeadError(f"{type(event).__name__} before LeadInserted for lead {event.lead_id}")
    version = state.version + 1
    match event:
        case LeadUpdated():
            fields = apply_changes(_live_fields(state), event.changes)
            keys = state.dedupe_keys if event.dedupe_keys is None else event.dedupe_keys
            return msgspec.structs.replace(state, version=version, fields=fields, dedupe_keys=keys)
        case LeadReassigned():
            fields = msgspec.structs.replace(_live_fields(state), agent=event.to_agent)
            return msgspec.structs.replace(state, version=version, fields=fields)
        case LeadArchived() | LeadArchiveSynced():
            copy = ArchiveCopy(
                snapshot=event.snapshot,
                dedupe_keys=event.dedupe_keys,
                source_version=event.source_version,
                archive_version=version,
            )
            return msgspec.structs.replace(state, version=version, archive=copy)
        case LeadDeleted():
            return msgspec.structs.replace(state, version=version, fields=None, dnc_marks={})
        case LeadRestored():
            return msgspec.structs.replace(
                state, version=version, fields=event.snapshot, dedupe_keys=event.dedupe_keys
            )
        case LeadArchiveRemoved():
            return msgspec.structs.replace(state, version=version, archive=None)
        case LeadErased():
            # Neither live nor archived: every command refuses an erased lead.
            return msgspec.structs.replace(
                state, version=version, fields=None, archive=None, dnc_marks={}
            )
        case LeadMarkedDnc() | LeadDncCleared():
            return msgspec.structs.replace(state, version=version, dnc_marks=_marks(state, event))
        case _:
            assert_never(event)


def _marks(state: LeadState, event: LeadMarkedDnc | LeadDncCleared) -> dict[int, datetime | None]:
    """The do-not-call marks after one: a second mark by an entry carries its new expiry."""
    marks = {k: v for k, v in state.dnc_marks.items() if k != event.dnc_entry_id}
    if isinstance(event, LeadMarkedDnc):
        marks[event.dnc_entry_id] = event.expires_at
    return marks


def fold(events: Iterable[LeadEvent], state: LeadState | None = None) -> LeadState | None:
    for event in events:
        state = evolve(state, event)
    return state


def apply_changes(fields: LeadFields, changes: Iterable[FieldChange]) -> LeadFields:
    """Fields with the diff's new values; converting back through msgspec restores types
    (an expiry travels as ISO text in the diff and comes back a datetime)."""
    data = msgspec.to_builtins(fields)
    for change in changes:
        data[change.field] = change.new
    return msgspec.convert(data, LeadFields)


def _live_fields(state: LeadState) -> LeadFields:
    if state.fields is None:
        raise LeadError(f"lead {state.lead_id} is not live")
    return state.fields


# --- decide ---------------------------------------------------------------------------------------


def decide_insert(
    *,
    lead_id: int,
    account_id: int,
    campaign_id: int,
    fields: LeadFields,
    default_region: str | None,
    keys: list[str] | None = None,
) -> LeadInserted:
    """A new lead; `keys` are its numbers' dedupe keys when the caller computed them already."""
    if keys is None:
        keys = dedupe_keys(fields.phone_numbers, default_region)
    _check_phones(fields.phone_numbers, keys)
    return LeadInserted(
        lead_id=lead_id,
        account_id=account_id,
        campaign_id=campaign_id,
        fields=fields,
        dedupe_keys=keys,
    )


MAX_PHONES = 6


def _check_phones(phones: list[str], keys: list[str]) -> None:
    """A lead is dialable: 1 to 6 numbers, at least one with digits in it."""
    if not keys:
        raise LeadError("a lead needs at least one phone number")
    if len(phones) > MAX_PHONES:
        raise LeadError(f"a lead has at most {MAX_PHONES} phone numbers, not {len(phones)}")


def decide_update(
    state: LeadState, patch: Mapping[str, object], default_region: str | None
) -> list[LeadEvent]:
    """Only what changes: LeadUpdated for field changes, LeadReassigned for a new agent.

    `patch` maps LeadFields names to new values; `crm` and `extra` are merged, not replaced,
    since vendors send only the CRM fields they update.
    """
    current = _live_fields(state)
    unknown = set(patch) - set(FIELD_NAMES)
    if unknown:
        raise LeadError(f"unknown lead fields: {', '.join(sorted(unknown))}")
    events: list[LeadEvent] = []
    changes: list[FieldChange] = []
    for name, value in patch.items():
        old = getattr(current, name)
        new = {**old, **value} if name in ("crm", "extra") and isinstance(value, dict) else value
        if name == "agent":
            if new != old:
                events.append(
                    LeadReassigned(lead_id=state.lead_id, from_agent=old, to_agent=_opt_str(new))
                )
            continue
        if new != old:
            changes.append(FieldChange(name, _wire(old), _wire(new)))
    if changes:
        keys = None
        if any(c.field == "phone_numbers" for c in changes):
            phones = patch["phone_numbers"]
            numbers = [str(p) for p in phones] if isinstance(phones, list) else []
            keys = dedupe_keys(numbers, default_region)
            _check_phones(numbers, keys)
        events.insert(0, LeadUpdated(lead_id=state.lead_id, changes=changes, dedupe_keys=keys))
    return events


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _wire(value: object) -> FieldValue:
    return msgspec.to_builtins(value)  # type: ignore[no-any-return]


def decide_delete(state: LeadState) -> LeadDeleted:
    _live_fields(state)
    return LeadDeleted(lead_id=state.lead_id, reason="api")


class ArchiveOutcome(msgspec.Struct, frozen=True, kw_only=True):
    events: list[LeadEvent]
    inserted: bool = False
    synced: bool = False  # an archive copy that existed before was re-synced
    deleted: bool = False


class RowTimes(msgspec.Struct, frozen=True, kw_only=True):
    """Entry and modify times of the live row, read from the projection and passed in."""

    entry_at: datetime | None = None
    modified_at: datetime | None = None


def decide_archive(
    state: LeadState,
    *,
    insert: bool,
    update: bool,
    delete: bool,
    times: RowTimes | None = None,
) -> ArchiveOutcome:
    """The Vicidial archive order: insert into the archive, re-sync it, then safe-delete.

    The delete compares the archive copy with the live lead field for field and happens only
    when they are equal, so a lead changed after archiving and not re-synced stays live.
    """
    fields = _live_fields(state)
    times = times or RowTimes()

    def copy(kind: type[LeadArchived | LeadArchiveSynced]) -> LeadArchived | LeadArchiveSynced:
        return kind(
            lead_id=state.lead_id,
            account_id=state.account_id,
            campaign_id=state.campaign_id,
            snapshot=fields,
            dedupe_keys=state.dedupe_keys,
            source_version=state.version,
            entry_at=times.entry_at,
            modified_at=times.modified_at,
        )

    events: list[LeadEvent] = []
    inserted = synced = deleted = False
    current = state
    if insert and current.archive is None:
        event: LeadEvent = copy(LeadArchived)
        events.append(event)
        current = evolve(current, event)
        inserted = True
    elif update and current.archive is not None and current.archive.snapshot != fields:
        event = copy(LeadArchiveSynced)
        events.append(event)
        current = evolve(current, event)
        synced = True
    if delete and current.archive is not None and current.archive.snapshot == fields:
        events.append(
            LeadDeleted(
                lead_id=state.lead_id,
                reason="archived",
                archive_version=current.archive.archive_version,
            )
        )
        deleted = True
    return ArchiveOutcome(events=events, inserted=inserted, synced=synced, deleted=deleted)


def decide_dearchive(
    state: LeadState,
    *,
    insert: bool,
    delete: bool,
    default_region: str | None,
    entry_at: datetime | None = None,
) -> ArchiveOutcome:
    """The reverse: restore the archived lead into live, then drop archive copies equal to live."""
    if state.archive is None:
        raise LeadError(f"lead {state.lead_id} is not archived")
    events: list[LeadEvent] = []
    inserted = deleted = False
    current = state
    if insert and not current.live:
        snapshot = state.archive.snapshot
        event: LeadEvent = LeadRestored(
            lead_id=state.lead_id,
            account_id=state.account_id,
            campaign_id=state.campaign_id,
            entry_at=entry_at,
            snapshot=snapshot,
            # The keys archived with the snapshot: the live keys may be of numbers changed
            # after archiving.
            dedupe_keys=state.archive.dedupe_keys
            or dedupe_keys(snapshot.phone_numbers, default_region),
            archive_version=state.archive.archive_version,
        )
        events.append(event)
        current = evolve(current, event)
        inserted = True
    if delete and current.fields is not None and current.fields == state.archive.snapshot:
        events.append(LeadArchiveRemoved(lead_id=state.lead_id, live_version=current.version))
        deleted = True
    return ArchiveOutcome(events=events, inserted=inserted, deleted=deleted)
