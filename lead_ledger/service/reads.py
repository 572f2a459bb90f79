"""Read side of the native API: leads, a lead's past, its history, the audit trail, the feed.

Every read is scoped to one account; a lead of another account is reported exactly like a
missing one (None), so callers cannot tell the two apart. SQL lives in module constants with
`$n` parameters; optional filters are `($n IS NULL OR ...)` so one plan serves every mix.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Final

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import Actor, EventMetadata, RecordedEvent
from lead_ledger.ledger.events import (
    CredentialIssued,
    DomainEvent,
    FieldValue,
    LeadEvent,
    LeadFields,
    LeadInserted,
    LeadReassigned,
    LeadUpdated,
    UserCreated,
    decode_event,
    stream_of_lead,
    tag_of,
)
from lead_ledger.ledger.feed import FeedEntry, feed_entry
from lead_ledger.ledger.lead import LeadError, evolve
from lead_ledger.ledger.opening import open_pairs, shown_records
from lead_ledger.ledger.phones import dedupe_key
from lead_ledger.ledger.row_times import times_after
from lead_ledger.ledger.store import read_feed, read_stream
from lead_ledger.projections.leads import LEAD_COLUMNS
from lead_ledger.service.account_reads import default_region
from lead_ledger.service.dnc_marks import DNC_STATUS, MARKED_DNC

# With each row, whether a do-not-call mark of it has not expired: it then reads `DNC`.
_LEAD_SELECT: Final = ", ".join(f"l.{column}" for column in LEAD_COLUMNS) + f",\n{MARKED_DNC}"

# An id matches before a name: ids are what every response returns, so a client paging with
# the campaign_id it was given never lands on a campaign that happens to be named "7".
SELECT_CAMPAIGN_ID: Final = """
SELECT campaign_id
FROM campaigns
WHERE account_id = $1 AND (name = $2 OR campaign_id::text = $2)
ORDER BY campaign_id::text = $2 DESC
LIMIT 1
"""

# The account of a lead's stream, before any of its events is read (let alone opened).
SELECT_LEAD_ACCOUNT: Final = (
    "SELECT account_id FROM events WHERE stream_id = $1 AND stream_version = 1"
)

SELECT_LEADS: Final = f"""
SELECT {_LEAD_SELECT}
FROM leads l
WHERE l.account_id = $1
  AND l.lead_id > $2
  AND ($3::bigint IS NULL OR l.campaign_id = $3)
  AND ($4::text IS NULL OR l.user_data = $4)
  AND ($5::text IS NULL OR l.lead_id IN (
        SELECT c.lead_id FROM contacts c
        WHERE c.kind = 'phone' AND c.value = $5
          AND ($3::bigint IS NULL OR c.campaign_id = $3)))
ORDER BY l.lead_id
LIMIT $6
"""

SELECT_LEAD: Final = f"""
SELECT {_LEAD_SELECT} FROM leads l WHERE l.lead_id = $1 AND l.account_id = $2
"""

# Keyset by position: an audit query is a report over what is committed, not a feed to follow
# (that is /v1/events, which reads below the visibility fence).
SELECT_AUDIT: Final = """
SELECT position, event_id, stream_id, stream_version, type, schema_version, data, metadata,
       recorded_at, transaction_id
FROM events
WHERE account_id = $1
  AND position > $2
  AND ($3::text IS NULL OR metadata->'actor'->>'dialect' = $3)
  AND ($4::text IS NULL OR metadata->'actor'->>'credential_id' = $4
                        OR metadata->'actor'->>'username' = $4)
  AND ($5::text[] IS NULL OR type = ANY($5::text[]))
  AND ($6::timestamptz IS NULL OR recorded_at >= $6)
  AND ($7::timestamptz IS NULL OR recorded_at < $7)
ORDER BY position
LIMIT $8
"""


# Secret verifiers stay in the log (credentials and users are rebuilt from it) but are never
# shown through the API: a password hash can be brute-forced offline, and a key hash is what
# the credential lookup matches on. A new event that carries a secret must be listed here.
REDACTED_FIELDS: Final = {
    tag_of(CredentialIssued): ("key_sha256",),
    tag_of(UserCreated): ("password_hash",),
}
# The stored types of the events that carry a field-level diff.
_DIFF_TYPES: Final = (tag_of(LeadUpdated), tag_of(LeadReassigned))


class UnknownCampaignError(LookupError):
    """The campaign filter names no campaign of the account."""


# --- shapes ---------------------------------------------------------------------------------------


class LeadView(LeadFields, frozen=True, kw_only=True, omit_defaults=False):
    """A lead as the native API shows it: every canonical field, its ids, version and times.
    While a do-not-call entry marks it, `dnc` is true and `status` reads `DNC` (its own status
    comes back when the mark is cleared or expires)."""

    lead_id: int
    account_id: int
    campaign_id: int
    version: int
    dedupe_keys: list[str]
    entry_at: datetime
    modified_at: datetime
    dnc: bool = False


class LeadPage(msgspec.Struct, frozen=True, kw_only=True):
    leads: list[LeadView]
    next_after: int | None  # the last lead_id of this page when there is another page


class Change(msgspec.Struct, frozen=True):
    old: FieldValue
    new: FieldValue


class EventView(msgspec.Struct, frozen=True, kw_only=True):
    """One event with who recorded it, why, and (for lead changes) the field-level diff."""

    position: int
    event_id: uuid.UUID
    stream_id: str
    version: int
    type: str
    schema_version: int
    recorded_at: datetime
    actor: Actor | None
    request_id: str | None
    job_id: str | None
    correlation_id: str | None
    causation_id: str | None
    changes: dict[str, Change] | None
    data: msgspec.Raw


class EventPage(msgspec.Struct, frozen=True, kw_only=True):
    events: list[EventView]
    next_after: int | None  # the last position of this page when there is another page


class FeedPage(msgspec.Struct, frozen=True, kw_only=True):
    events: list[FeedEntry]
    next_after: int  # where to resume: the last position seen, or `after` when nothing is new


class LeadQuery(msgspec.Struct, frozen=True, kw_only=True):
    campaign: str | None = None
    phone: str | None = None
    user_data: str | None = None
    limit: int = 100
    after: int = 0


class AuditQuery(msgspec.Struct, frozen=True, kw_only=True):
    dialect: str | None = None
    actor: str | None = None
    types: list[str] | None = None
    from_: datetime | None = None
    to: datetime | None = None
    after: int = 0
    limit: int = 100


# --- leads ----------------------------------------------------------------------------------------


async def campaign_named(conn: Connection, account_id: int, name: str | None) -> int | None:
    """The id of the account's campaign of that name (None for no filter); UnknownCampaignError
    when it names none, so a misspelt filter is an error, never an empty page."""
    if name is None:
        return None
    campaign_id: int | None = await conn.fetchval(SELECT_CAMPAIGN_ID, account_id, name)
    if campaign_id is None:
        raise UnknownCampaignError(name)
    return campaign_id


async def find_leads(conn: Connection, account_id: int, query: LeadQuery) -> LeadPage:
    """One page of the account's live leads in lead_id order, filtered.

    Raises UnknownCampaignError when `campaign` names no campaign of this account.
    """
    campaign_id = await campaign_named(conn, account_id, query.campaign)
    phone_key = None
    if query.phone is not None:
        # The same normalisation the writer used, so "098765 43210" finds "+919876543210".
        region = await default_region(conn, account_id)
        phone_key = dedupe_key(query.phone, region)
    # One row more than asked tells whether another page exists without a second query.
    rows = await conn.fetch(
        SELECT_LEADS,
        account_id,
        query.after,
        campaign_id,
        query.user_data,
        phone_key,
        query.limit + 1,
    )
    leads = [lead_view_of_row(row) for row in rows[: query.limit]]
    more = len(rows) > query.limit
    return LeadPage(leads=leads, next_after=leads[-1].lead_id if more else None)


async def get_lead(conn: Connection, account_id: int, lead_id: int) -> LeadView | None:
    """The live lead from the projection, or None (missing, deleted, or another account's)."""
    row = await conn.fetchrow(SELECT_LEAD, lead_id, account_id)
    return None if row is None else lead_view_of_row(row)


async def lead_as_of(
    conn: Connection,
    account_id: int,
    lead_id: int,
    *,
    at: datetime | None = None,
    version: int | None = None,
) -> LeadView | None:
    """The lead as it was at a time or version, folded from its stream (not the projection).

    None when it did not exist then, was not live then, or belongs to another account. A lead
    deleted since is still found: its stream keeps every event.
    """
    if await _lead_account(conn, lead_id) != account_id:
        return None  # another account's lead: nothing of it read or opened, as for a missing id
    events = await read_stream(conn, stream_of_lead(lead_id), up_to_version=version, up_to_time=at)
    if version is not None and (not events or events[-1].stream_version < version):
        return None  # that version was never reached
    return fold_lead_view(await _open_lead_events(conn, events), account_id, at)


async def _lead_account(conn: Connection, lead_id: int) -> int | None:
    """The account the lead's stream belongs to (from its first event's row, one index
    lookup), or None when there is no such lead."""
    account_id: int | None = await conn.fetchval(SELECT_LEAD_ACCOUNT, stream_of_lead(lead_id))
    return account_id


def fold_lead_view(
    pairs: Sequence[tuple[RecordedEvent, DomainEvent | None]],
    account_id: int,
    at: datetime | None,
) -> LeadView | None:
    """The lead its opened events (its stream up to a time or version) make, as `lead_as_of`
    shows it; None when they make no live lead of this account. Exports as of a time fold
    each lead with it, so an export and the as-of read cannot disagree."""
    state = None
    times = None
    try:
        for recorded, opened in pairs:
            event = opened if isinstance(opened, LeadEvent) else None
            if event is None:
                return None
            state = evolve(state, event)
            # The rule the leads projection keeps, so a past view reads like a current one.
            times = times_after(times, event, recorded.recorded_at)
    except LeadError:
        return None  # a stream that does not fold is not a lead we can show
    if state is None or state.fields is None or state.account_id != account_id:
        return None
    if times is None:
        return None
    # Marked then: at the time asked for, or (for a version) when that version was written.
    dnc = state.dnc_at(at if at is not None else pairs[-1][0].recorded_at)
    return LeadView(
        **(msgspec.structs.asdict(state.fields) | ({"status": DNC_STATUS} if dnc else {})),
        lead_id=state.lead_id,
        account_id=state.account_id,
        campaign_id=state.campaign_id,
        version=state.version,
        dedupe_keys=state.dedupe_keys,
        entry_at=times.entry_at,
        modified_at=times.modified_at,
        dnc=dnc,
    )


async def lead_history(conn: Connection, account_id: int, lead_id: int) -> list[EventView] | None:
    """Every event of the lead in order with actor and diff; None if it is not this account's
    (another account's lead is not read: the same work as for a missing id)."""
    if await _lead_account(conn, lead_id) != account_id:
        return None
    events = await read_stream(conn, stream_of_lead(lead_id))
    if not events:
        return None
    first = _lead_event(events[0])
    if not isinstance(first, LeadInserted) or first.account_id != account_id:
        return None
    return [event_view(recorded) for recorded in await shown_records(conn, events)]


# --- events ---------------------------------------------------------------------------------------


async def audit_events(conn: Connection, account_id: int, query: AuditQuery) -> EventPage:
    """One page of the account's events in position order, filtered by actor, type and time."""
    rows = await conn.fetch(
        SELECT_AUDIT,
        account_id,
        query.after,
        query.dialect,
        query.actor,
        query.types,
        query.from_,
        query.to,
        query.limit + 1,
    )
    shown = await shown_records(conn, [_recorded(row) for row in rows[: query.limit]])
    events = [event_view(recorded) for recorded in shown]
    more = len(rows) > query.limit
    return EventPage(events=events, next_after=events[-1].position if more else None)


async def feed_page(conn: Connection, account_id: int, *, after: int, limit: int) -> FeedPage:
    """The next committed events of the account's safe feed after position `after`."""
    events = await read_feed(conn, after=after, limit=limit, account_id=account_id)
    entries = [shown_entry(event) for event in await shown_records(conn, events)]
    return FeedPage(events=entries, next_after=entries[-1].position if entries else after)


def event_view(recorded: RecordedEvent) -> EventView:
    metadata = _metadata(recorded)
    return EventView(
        position=recorded.position,
        event_id=recorded.event_id,
        stream_id=recorded.stream_id,
        version=recorded.stream_version,
        type=recorded.type,
        schema_version=recorded.schema_version,
        recorded_at=recorded.recorded_at,
        actor=metadata.actor,
        request_id=metadata.request_id,
        job_id=metadata.job_id,
        correlation_id=metadata.correlation_id,
        causation_id=metadata.causation_id,
        changes=_changes(recorded),
        data=msgspec.Raw(shown_data(recorded.type, recorded.data)),
    )


def shown_entry(event: RecordedEvent) -> FeedEntry:
    """The feed entry of an event as the API may show it (secret verifiers removed); `event`
    is one of `opening.shown_records`, its personal data opened."""
    entry = feed_entry(event)
    if event.type not in REDACTED_FIELDS:
        return entry
    return msgspec.structs.replace(entry, data=msgspec.Raw(shown_data(event.type, event.data)))


def shown_data(event_type: str, data: bytes) -> bytes:
    hidden = REDACTED_FIELDS.get(event_type)
    if not hidden:
        return data
    body = msgspec.json.decode(data)
    if isinstance(body, dict):
        for name in hidden:
            body.pop(name, None)
    return msgspec.json.encode(body)


def _changes(recorded: RecordedEvent) -> dict[str, Change] | None:
    if recorded.type not in _DIFF_TYPES:
        return None
    event = _lead_event(recorded)
    if isinstance(event, LeadUpdated):
        return {change.field: Change(change.old, change.new) for change in event.changes}
    if isinstance(event, LeadReassigned):
        return {"agent": Change(event.from_agent, event.to_agent)}
    return None


async def _open_lead_events(
    conn: Connection, events: list[RecordedEvent]
) -> list[tuple[RecordedEvent, DomainEvent | None]]:
    try:
        return list(await open_pairs(conn, events))
    except msgspec.DecodeError:
        return [(recorded, None) for recorded in events]


def _lead_event(recorded: RecordedEvent) -> LeadEvent | None:
    try:
        event = decode_event(recorded)
    except msgspec.DecodeError:
        return None
    return event if isinstance(event, LeadEvent) else None


def _metadata(recorded: RecordedEvent) -> EventMetadata:
    # Metadata written by an older or foreign writer must not hide the event from the trail.
    try:
        return recorded.decoded_metadata()
    except msgspec.DecodeError:
        return EventMetadata()


def lead_view_of_row(row: asyncpg.Record) -> LeadView:
    """A row of `leads` (with its `dnc` column) as the native API shows it."""
    # Rows carry jsonb as raw JSON bytes (see ledger.database); msgspec decodes crm and extra.
    data = dict(row)
    for column in ("crm", "extra"):
        data[column] = msgspec.json.decode(data[column])
    if data["dnc"]:
        data["status"] = DNC_STATUS
    return msgspec.convert(data, LeadView)


def _recorded(row: asyncpg.Record) -> RecordedEvent:
    return msgspec.convert(dict(row), RecordedEvent)
