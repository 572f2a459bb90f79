"""Every domain event: tagged, frozen msgspec Structs, one Union per stream kind.

Rules that keep the log readable forever: a type never changes meaning; new fields get
defaults; a breaking change is a new schema_version with an upcaster in `decode_event`.
"""

from __future__ import annotations

import typing
import uuid
from datetime import datetime
from typing import Final, Literal, TypeAlias

import msgspec

from lead_ledger.ledger.dnc_events import DncEvent, DncScope
from lead_ledger.ledger.envelope import NewEvent, RecordedEvent, Sealed
from lead_ledger.ledger.job_events import JobEvent
from lead_ledger.ledger.subscription_events import SubscriptionEvent

# A lead field's value as it travels in a diff: text, a number, a flag, a list of numbers, a map.
FieldValue: TypeAlias = (
    str | int | float | bool | list[str] | dict[str, str | int | float | bool | None] | None
)
ExtraValue: TypeAlias = str | int | float | bool | None

Dialect = Literal["flexydial", "ozonetel", "vicidial", "jtel", "native"]
DIALECTS: Final[tuple[Dialect, ...]] = ("flexydial", "ozonetel", "vicidial", "jtel", "native")
Direction = Literal["outbound", "inbound"]
Assignment = Literal["none", "agentwise", "skillwise"]
DialMode = Literal["Progressive", "Predictive", "Preview", "IVR"]
CampaignState = Literal["running", "stopped"]
ApiAuthentication = Literal["BASIC_AUTH", "TOKEN_AUTH", "NONE"]


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True):
    pass


class _Personal(_Event, frozen=True, kw_only=True):
    """An event with personal data. Stored, `sealed` holds that data encrypted and the event's
    own fields hold the rest; opened, `erased` says the data is gone (ledger/sealing.py)."""

    sealed: Sealed | None = None
    erased: bool = False


# --- lead fields --------------------------------------------------------------------------------


class LeadFields(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The canonical lead: every dialect maps its names onto these (the native API uses them
    as they are; docs/ozonetel.md, docs/jtel.md and docs/vicidial.md have a field mapping table,
    docs/bulk-validation.md the Flexydial and Ozonetel upload columns)."""

    phone_numbers: list[str] = []
    name: str | None = None
    first_name: str | None = None
    middle_initial: str | None = None
    last_name: str | None = None
    title: str | None = None
    salutation: str | None = None
    company: str | None = None
    address1: str | None = None
    address2: str | None = None
    address3: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    email: str | None = None
    comments: str | None = None
    user_data: str | None = None
    reference_number: str | None = None
    crm: dict[str, str] = {}
    agent: str | None = None
    skill: str | None = None
    priority: int = 1
    expires_at: datetime | None = None
    status: str = "new"
    extra: dict[str, ExtraValue] = {}


FIELD_NAMES: Final = tuple(f.name for f in msgspec.structs.fields(LeadFields))


class FieldChange(msgspec.Struct, frozen=True, array_like=True):
    """One field's old and new value; `field` is a LeadFields name."""

    field: str
    old: FieldValue
    new: FieldValue


# --- lead events (stream lead-<id>) -------------------------------------------------------------


class LeadInserted(_Personal, frozen=True, kw_only=True, tag="LeadInserted"):
    lead_id: int
    account_id: int
    campaign_id: int
    fields: LeadFields
    # Decided at insert with the account's region then; replay never re-normalises.
    dedupe_keys: list[str]


class LeadUpdated(_Personal, frozen=True, kw_only=True, tag="LeadUpdated"):
    lead_id: int
    changes: list[FieldChange]
    dedupe_keys: list[str] | None = None  # set when phone_numbers changed


class LeadReassigned(_Event, frozen=True, kw_only=True, tag="LeadReassigned"):
    lead_id: int
    from_agent: str | None
    to_agent: str | None


class _ArchiveCopy(_Personal, frozen=True, kw_only=True):
    """The live row as archived: fields, keys and times, and the version it was taken at."""

    lead_id: int
    account_id: int
    campaign_id: int
    snapshot: LeadFields
    dedupe_keys: list[str]
    source_version: int  # the lead stream version the snapshot was taken at
    entry_at: datetime | None = None
    modified_at: datetime | None = None


class LeadArchived(_ArchiveCopy, frozen=True, kw_only=True, tag="LeadArchived"):
    pass


class LeadArchiveSynced(_ArchiveCopy, frozen=True, kw_only=True, tag="LeadArchiveSynced"):
    pass


DeleteReason = Literal["archived", "api"]


class LeadDeleted(_Event, frozen=True, kw_only=True, tag="LeadDeleted"):
    lead_id: int
    reason: DeleteReason
    archive_version: int | None = None  # for archive deletes: the archive compared with


class LeadRestored(_Personal, frozen=True, kw_only=True, tag="LeadRestored"):
    lead_id: int
    account_id: int
    campaign_id: int
    snapshot: LeadFields
    dedupe_keys: list[str]
    archive_version: int
    entry_at: datetime | None = None  # the archived entry time, kept across the round trip


class LeadErased(_Event, frozen=True, kw_only=True, tag="LeadErased"):
    """The lead's subject was erased (erasure `erasure_id`): it is gone from every view, and its
    sealed data can no longer be opened. Terminal: no command applies to the lead after it."""

    lead_id: int
    erasure_id: str


class LeadArchiveRemoved(_Event, frozen=True, kw_only=True, tag="LeadArchiveRemoved"):
    """Dearchive's safe delete: the archive row equalled the live lead, so it was dropped."""

    lead_id: int
    live_version: int


class LeadMarkedDnc(_Event, frozen=True, kw_only=True, tag="LeadMarkedDnc"):
    """A do-not-call entry holds one of this live lead's numbers in its scope: the lead reads
    `DNC` and is not dialable while an entry that marked it blocks (`expires_at` is the entry's,
    compared with the time of the read: an entry expires without an event). Recorded again with
    the new expiry when the entry's changes; the lead's own status is kept underneath."""

    lead_id: int
    dnc_entry_id: int
    dnc_scope: DncScope
    expires_at: datetime | None = None


DncClearReason = Literal["removed", "inactive", "expired", "number_changed"]


class LeadDncCleared(_Event, frozen=True, kw_only=True, tag="LeadDncCleared"):
    """The entry no longer marks the lead: removed from the registry, turned Inactive, given an
    expiry already past, or none of the lead's numbers is the entry's any more. Its status reads
    as its own again once no other entry marks it."""

    lead_id: int
    dnc_entry_id: int
    reason: DncClearReason


LeadEvent: TypeAlias = (
    LeadInserted
    | LeadUpdated
    | LeadReassigned
    | LeadArchived
    | LeadArchiveSynced
    | LeadDeleted
    | LeadRestored
    | LeadArchiveRemoved
    | LeadErased
    | LeadMarkedDnc
    | LeadDncCleared
)


# --- refusals (stream request-<id> or job-<id>) -------------------------------------------------


class LeadRejected(_Personal, frozen=True, kw_only=True, tag="LeadRejected"):
    """A row or request that was refused, with why: the audit trail of what did not happen."""

    account_id: int
    campaign_id: int | None
    reason: str
    row: dict[str, ExtraValue] = {}
    row_number: int | None = None
    existing_lead_ids: list[int] = []
    # Refused as `dnc`: the do-not-call entry that blocked it, and its scope.
    dnc_entry_id: int | None = None
    dnc_scope: DncScope | None = None


# --- erasures (stream erasure-<id>) ---------------------------------------------------------------

ErasureBy = Literal["phone", "lead_id", "user_data"]


class SubjectErased(_Event, frozen=True, kw_only=True, tag="SubjectErased"):
    """An erasure: which subjects' keys were destroyed, asked for how, and a keyed digest of
    what was asked for, never the value itself. The actor is in the metadata."""

    erasure_id: str
    account_id: int
    by: ErasureBy
    request_digest: str
    subjects: list[str]
    lead_ids: list[int] = []
    # (job id, row number) of each rejected row erased.
    rejected_rows: list[tuple[int, int]] = []


def stream_of_erasure(erasure_id: str) -> str:
    return f"erasure-{erasure_id}"


# --- account configuration (stream account-<id>) ------------------------------------------------


class OfficeHours(msgspec.Struct, frozen=True, kw_only=True):
    timezone: str
    days: list[int]  # ISO weekdays, 1 = Monday
    start: str  # "HH:MM"
    end: str  # "HH:MM"


class RateLimits(msgspec.Struct, frozen=True, kw_only=True):
    ozonetel_bulk_per_minute: int = 1
    ozonetel_add_per_minute: int = 100
    ozonetel_delete_per_minute: int = 100
    ozonetel_bulk_v4_per_minute: int = 5


class AccountSettings(msgspec.Struct, frozen=True, kw_only=True):
    api_authentication: ApiAuthentication = "BASIC_AUTH"
    default_region: str | None = None
    office_hours: OfficeHours | None = None
    rate_limits: RateLimits = RateLimits()


class AccountCreated(_Event, frozen=True, kw_only=True, tag="AccountCreated"):
    account_id: int
    name: str
    settings: AccountSettings


class SettingsChanged(_Event, frozen=True, kw_only=True, tag="SettingsChanged"):
    account_id: int
    settings: AccountSettings  # the whole settings after the change
    changed: list[str]


class CredentialIssued(_Event, frozen=True, kw_only=True, tag="CredentialIssued"):
    account_id: int
    credential_id: str
    dialect: Dialect
    key_sha256: str  # the key itself is shown once and never stored
    # The user a login issued it to (Flexydial's generate-token): that user's one token, which
    # every later login answers again (ledger/credentials.py, login_token).
    username: str | None = None


class CredentialRevoked(_Event, frozen=True, kw_only=True, tag="CredentialRevoked"):
    account_id: int
    credential_id: str


class UserCreated(_Event, frozen=True, kw_only=True, tag="UserCreated"):
    account_id: int
    username: str
    password_hash: str


class AgentAdded(_Event, frozen=True, kw_only=True, tag="AgentAdded"):
    account_id: int
    agent_id: str
    name: str | None = None


class SkillAdded(_Event, frozen=True, kw_only=True, tag="SkillAdded"):
    account_id: int
    name: str


class CampaignConfig(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    direction: Direction = "outbound"
    assignment: Assignment = "none"
    dial_mode: DialMode = "Progressive"
    state: CampaignState = "stopped"
    crm_fields: list[str] | None = None
    # The Vicidial campaign this campaign (a Vicidial list) belongs to: lists that share one
    # are searched together by Vicidial's DUP...CAMP checks and CAMPAIGN search location.
    vicidial_campaign: str | None = None


class CampaignCreated(_Event, frozen=True, kw_only=True, tag="CampaignCreated"):
    account_id: int
    campaign_id: int
    config: CampaignConfig


class CampaignUpdated(_Event, frozen=True, kw_only=True, tag="CampaignUpdated"):
    account_id: int
    campaign_id: int
    config: CampaignConfig  # the whole configuration after the change
    changed: list[str]


class CampaignStarted(_Event, frozen=True, kw_only=True, tag="CampaignStarted"):
    account_id: int
    campaign_id: int


class CampaignStopped(_Event, frozen=True, kw_only=True, tag="CampaignStopped"):
    account_id: int
    campaign_id: int


AccountEvent: TypeAlias = (
    AccountCreated
    | SettingsChanged
    | CredentialIssued
    | CredentialRevoked
    | UserCreated
    | AgentAdded
    | SkillAdded
    | CampaignCreated
    | CampaignUpdated
    | CampaignStarted
    | CampaignStopped
)

DomainEvent: TypeAlias = (
    LeadEvent
    | AccountEvent
    | LeadRejected
    | SubjectErased
    | JobEvent
    | DncEvent
    | SubscriptionEvent
)
LEAD_EVENT_TYPES: Final = typing.get_args(LeadEvent)
EVENT_TYPES: Final[tuple[type[DomainEvent], ...]] = typing.get_args(DomainEvent)


def _tag(event_type: type[DomainEvent]) -> str:
    tag = event_type.__struct_config__.tag
    if not isinstance(tag, str):
        raise TypeError(f"{event_type.__name__} has no text tag")
    return tag


# The stored `type` of each event is its msgspec tag, the same text as the body's "type" field,
# never the class name: a class can be renamed, a stored type cannot. (Every tag equals its
# class name today; tests/unit/test_event_codec.py holds them to that so neither drifts.)
EVENT_TAGS: Final[dict[type[DomainEvent], str]] = {t: _tag(t) for t in EVENT_TYPES}


def tag_of(event_type: type[DomainEvent]) -> str:
    """The text an event of this type is stored under (the `type` column and the body's tag)."""
    return EVENT_TAGS[event_type]


# Built once: decoding dispatches on the "type" tag inside the body.
_DECODER: Final = msgspec.json.Decoder(DomainEvent)
_ENCODER: Final = msgspec.json.Encoder()
SCHEMA_VERSION: Final = 1


def encode_event(event: DomainEvent, event_id: uuid.UUID) -> NewEvent:
    return NewEvent(
        event_id=event_id,
        type=EVENT_TAGS[type(event)],
        data=_ENCODER.encode(event),
        schema_version=SCHEMA_VERSION,
    )


def decode_event(recorded: RecordedEvent) -> DomainEvent:
    """The typed event of a stored one. Upcasters for older schema versions go here."""
    event: DomainEvent = _DECODER.decode(recorded.data)
    return event


def stream_of_lead(lead_id: int) -> str:
    return f"lead-{lead_id}"


def stream_of_account(account_id: int) -> str:
    return f"account-{account_id}"
