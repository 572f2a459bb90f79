"""Ozonetel CloudAgent AddCampaignData: one number into an outbound campaign (seed 002).

The vendor checks a request in a fixed order; `add_campaign_data` replays that order exactly and
names the first check that failed (`Refusal`), or what was done (docs/ozonetel.md lists both;
api/ozonetel_add.py holds the vendor's answer to each).
It is on a hot path, so everything it must know before writing (the credential, its account,
the settings, the campaign, whether the agent and skill exist) comes from one query, and the
whole request uses one pooled connection: that read, the rate-limit hit (outside any
transaction), then the insert and the campaign action in one transaction.
"""

from __future__ import annotations

import enum
import hmac
import re
import zoneinfo
from datetime import UTC, date, datetime, time
from typing import Final, TypeGuard

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.credentials import key_digest
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import CampaignState, LeadFields, OfficeHours, RateLimits
from lead_ledger.ledger.locks import lock_campaigns
from lead_ledger.service import rate_limits
from lead_ledger.service.accounts import CampaignChanges, lock_account, update_campaign
from lead_ledger.service.lead_batcher import LeadInsertBatcher
from lead_ledger.service.lead_inserts import NewLead, insert_lead_batch
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context, Origin

BUCKET: Final = "ozonetel_add"

# Everything the checks need, in one round trip. The campaign, agent and skill are looked up in
# the key's own account only, so another account's names behave exactly like missing ones.
SELECT_REQUEST_CONTEXT: Final = """
SELECT c.account_id, c.credential_id, c.key_sha256, a.name AS account_name,
       s.api_authentication, s.office_hours, s.rate_limits, s.default_region,
       k.campaign_id, k.name AS campaign_name, k.direction, k.assignment, k.dial_mode,
       EXISTS (SELECT 1 FROM agents g
               WHERE g.account_id = c.account_id AND g.agent_id = $3) AS agent_known,
       EXISTS (SELECT 1 FROM skills l
               WHERE l.account_id = c.account_id AND l.name = $4) AS skill_known
FROM credentials c
JOIN accounts a ON a.account_id = c.account_id
JOIN settings s ON s.account_id = c.account_id
LEFT JOIN campaigns k ON k.account_id = c.account_id AND k.name = $2
WHERE c.key_sha256 = $1 AND c.dialect = 'ozonetel' AND NOT c.revoked
"""
# Read again under the account lock: the state decides what `action` does, and a rename may
# have happened since the first read (the campaign lock does not stop renames).
SELECT_CAMPAIGN_STATE: Final = "SELECT name, dial_mode, state FROM campaigns WHERE campaign_id = $1"

# The vendor's phone rule: 3 to 16 ASCII digits, optionally after one "+".
_PHONE: Final = re.compile(r"\+?[0-9]{3,16}")
# Java's Integer.parseInt syntax (an optional sign, ASCII digits): "5" is a priority like 5.
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_DATE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATE_TIME: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
# PostgreSQL text and jsonb cannot hold NUL: a name containing one names nothing.
_NUL: Final = "\x00"

# A JSON scalar as the vendor's Jackson would bind it to a String field.
Scalar = str | int | float | bool | None


class AddCampaignData(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON body. Every field is optional here: the checks decide, in the vendor's order."""

    campaignName: Scalar = None  # noqa: N815 - the vendor's field names
    phoneNumber: Scalar = None  # noqa: N815
    Name: Scalar = None
    action: Scalar = None
    skill: Scalar = None
    priority: Scalar = None
    agentId: Scalar = None  # noqa: N815
    expiryDate: Scalar = None  # noqa: N815
    checkDuplicate: Scalar = None  # noqa: N815
    userName: Scalar = None  # noqa: N815


class Refusal(enum.Enum):
    """The vendor's checks, in its order: a refused request names the first that failed.

    The vendor answers each with HTTP 200 and a status/message pair of its own, the rate limit
    with 429: api/ozonetel_add.py holds those answers.
    """

    NO_API_KEY = enum.auto()
    INVALID_USER = enum.auto()  # an unknown key, or a userName that is not the key's account
    NO_USERNAME = enum.auto()
    API_NOT_ALLOWED = enum.auto()  # the account's api_authentication is not BASIC_AUTH
    NO_CAMPAIGN = enum.auto()
    UNKNOWN_CAMPAIGN = enum.auto()
    NOT_OUTBOUND = enum.auto()
    BAD_PHONE = enum.auto()
    BAD_PRIORITY = enum.auto()
    BAD_DATE = enum.auto()
    PAST_DATE = enum.auto()
    NO_AGENT = enum.auto()
    UNKNOWN_AGENT = enum.auto()
    BAD_SKILL = enum.auto()
    RATE_LIMITED = enum.auto()


class Added(msgspec.Struct, frozen=True):
    """The number was added (no action, or an action other than start and stop)."""

    campaign: str


class AlreadyExists(msgspec.Struct, frozen=True):
    """A duplicate check found the number live in the campaign: nothing was written."""


class Started(msgspec.Struct, frozen=True):
    """Added, and the stopped campaign was started."""

    dial_mode: str


class AlreadyStarted(msgspec.Struct, frozen=True):
    """Added; the campaign was running already."""

    campaign: str


class Stopped(msgspec.Struct, frozen=True):
    """Added, and the campaign stopped (also when it already was: the vendor answers alike)."""

    dial_mode: str


Outcome = Refusal | Added | AlreadyExists | Started | AlreadyStarted | Stopped


def _text(value: Scalar) -> str | None:
    """The value as the vendor's String field holds it; None when missing or null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _given(value: Scalar) -> str | None:
    """The text of a name-like field, or None when it is missing, empty or blank."""
    text = _text(value)
    return text if text is not None and text.strip() else None


def key_matches(row: asyncpg.Record | None, digest: str) -> TypeGuard[asyncpg.Record]:
    """A credential row was found by the key's digest, and it matches (constant-time)."""
    # The lookup is by hash; compare_digest keeps the final check constant-time anyway.
    return row is not None and hmac.compare_digest(str(row["key_sha256"]), digest)


def names_account(username: str, row: asyncpg.Record) -> bool:
    """The username the caller sent names the key's account (`account_name` of `row`)."""
    # Account names are unique case-insensitively (lower(name)), so compare the same way.
    return username.lower() == str(row["account_name"]).lower()


def lookup(text: str | None) -> str | None:
    """A name to look up, or None when it can name nothing (PostgreSQL text cannot hold NUL)."""
    return None if text is None or _NUL in text else text


def stored(text: str | None) -> str | None:
    # Event bodies are jsonb, which cannot hold NUL: free text loses it rather than the lead.
    return text.replace(_NUL, "") or None if text is not None else None


def parse_priority(value: Scalar) -> int | None:
    """1 when absent; the number when it is an integer 0-99 (JSON or text); else None."""
    if value is None:
        return 1
    if isinstance(value, (bool, float)):
        return None
    text = str(value)
    if not _INTEGER.fullmatch(text):
        return None
    number = int(text)
    return number if 0 <= number <= 99 else None


def parse_expiry(text: str, timezone: str | None) -> datetime | None:
    """The moment `yyyy-MM-dd HH:mm:ss` or `yyyy-MM-dd` (midnight) names, in UTC; None if
    neither format fits or the date does not exist. The wall time is in `timezone`."""
    match = _DATE_TIME.fullmatch(text) or _DATE.fullmatch(text)
    if match is None:
        return None
    year, month, day_, *hms = (int(p) for p in match.groups())
    try:
        day = date(year, month, day_)
        clock = time(hms[0], hms[1], hms[2]) if hms else time()
    except ValueError:
        return None
    zone = zoneinfo.ZoneInfo(timezone) if timezone else UTC
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def wants_duplicate_check(value: Scalar) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


class _Accepted(msgspec.Struct, frozen=True, kw_only=True):
    """A request that passed every check and the rate limit: what remains is to write it."""

    row: asyncpg.Record
    ctx: Context
    lead: NewLead
    action: str | None


async def add_campaign_data(
    pool: asyncpg.Pool,
    batcher: LeadInsertBatcher,
    *,
    api_key: str,
    body: AddCampaignData,
    now: datetime,
    origin: Origin,
) -> Outcome:
    """Run the vendor's checks in order, then add the number and apply `action`."""
    async with pool.acquire() as conn:
        accepted = await _accept(conn, api_key, body, now, origin)
        if isinstance(accepted, Refusal):
            return accepted
        if (accepted.action or "").lower() in ("start", "stop"):
            return await _add_and_act(conn, accepted)
    # A plain add goes through the per-campaign batcher, this request's connection released.
    row = accepted.row
    inserted = await batcher.insert(
        account_id=row["account_id"],
        campaign_id=row["campaign_id"],
        region=row["default_region"],
        lead=accepted.lead,
    )
    return AlreadyExists() if inserted.lead_id is None else Added(row["campaign_name"])


async def _accept(
    conn: Connection,
    api_key: str,
    body: AddCampaignData,
    now: datetime,
    origin: Origin,
) -> _Accepted | Refusal:
    """Checks 1-14, in the vendor's order; the first that fails is the answer."""
    if not api_key:
        return Refusal.NO_API_KEY
    digest = key_digest(api_key)
    lookups = (lookup(_given(body.campaignName)), lookup(_given(body.agentId)))
    row = await conn.fetchrow(SELECT_REQUEST_CONTEXT, digest, *lookups, lookup(_given(body.skill)))
    if not key_matches(row, digest):
        return Refusal.INVALID_USER
    refused = _check_caller(row, body) or _check_campaign(row, body)
    if refused is not None:
        return refused
    fields = lead_fields(row, body, now)
    if isinstance(fields, Refusal):
        return fields
    limits = msgspec.json.decode(row["rate_limits"], type=RateLimits)
    if not await rate_limits.take(conn, row["account_id"], BUCKET, limits.ozonetel_add_per_minute):
        return Refusal.RATE_LIMITED
    actor = Actor(
        dialect="ozonetel", account_id=row["account_id"], credential_id=row["credential_id"]
    )
    ctx = origin.context(actor)
    lead = NewLead(
        fields=fields,
        ctx=ctx,
        check_duplicates=wants_duplicate_check(body.checkDuplicate),
        # The refusal is audited on the request's own stream (DESIGN.md 4).
        rejections_stream=f"request-{origin.request_id}",
    )
    return _Accepted(row=row, ctx=ctx, lead=lead, action=_text(body.action))


async def _add_and_act(conn: Connection, accepted: _Accepted) -> Outcome:
    """Add the number and start or stop the campaign, in one transaction."""
    row, ctx = accepted.row, accepted.ctx
    account_id: int = row["account_id"]
    # Locks released at commit, answered once durable: see service/transactions.py.
    async with write_transaction(conn):
        # Every lock before the first write: the feed orders events by transaction id, which
        # is taken at the first write, so a stream's writers must hold its lock from before
        # then (docs/decisions.md, "Locks before the first write").
        await lock_campaigns(conn, [row["campaign_id"]])
        await lock_account(conn, account_id)
        result = await insert_lead_batch(
            conn,
            account_id=account_id,
            campaign_id=row["campaign_id"],
            leads=[accepted.lead],
            region=row["default_region"],  # already read: one round trip less in the lock
        )
        if result.duplicates:
            return AlreadyExists()
        campaign = (row["campaign_id"], row["campaign_name"])
        return await _apply_action(conn, ctx, account_id, campaign, accepted.action)


def _check_caller(row: asyncpg.Record, body: AddCampaignData) -> Refusal | None:
    """Checks 3-5: the userName names the key's account, which allows this API."""
    username = _given(body.userName)
    if username is None:
        return Refusal.NO_USERNAME
    if not names_account(username, row):
        return Refusal.INVALID_USER
    if row["api_authentication"] != "BASIC_AUTH":
        return Refusal.API_NOT_ALLOWED
    return None


def _check_campaign(row: asyncpg.Record, body: AddCampaignData) -> Refusal | None:
    """Checks 6-8: a campaign is named, exists in the account and is outbound."""
    if _given(body.campaignName) is None:
        return Refusal.NO_CAMPAIGN
    if row["campaign_id"] is None:
        return Refusal.UNKNOWN_CAMPAIGN
    if row["direction"] != "outbound":
        return Refusal.NOT_OUTBOUND
    return None


def lead_fields(  # noqa: PLR0911 - a return per documented answer
    row: asyncpg.Record, body: AddCampaignData, now: datetime
) -> LeadFields | Refusal:
    """Checks 9-13 (phone, priority, expiry, agent, skill), then the canonical lead."""
    phone = _text(body.phoneNumber)
    if phone is None or not _PHONE.fullmatch(phone):
        return Refusal.BAD_PHONE
    priority = parse_priority(body.priority)
    if priority is None:
        return Refusal.BAD_PRIORITY
    expires_at = None
    expiry = _text(body.expiryDate)
    if expiry is not None:
        hours = row["office_hours"]
        office = None if hours is None else msgspec.json.decode(hours, type=OfficeHours | None)
        expires_at = parse_expiry(expiry, office.timezone if office else None)
        if expires_at is None:
            return Refusal.BAD_DATE
        if expires_at <= now:
            return Refusal.PAST_DATE
    agent_id, skill = _given(body.agentId), _given(body.skill)
    if row["assignment"] == "agentwise":
        if agent_id is None:
            return Refusal.NO_AGENT
        if not row["agent_known"]:
            return Refusal.UNKNOWN_AGENT
    if row["assignment"] == "skillwise" and not row["skill_known"]:
        return Refusal.BAD_SKILL
    return LeadFields(
        phone_numbers=[phone],
        name=stored(_given(body.Name)),
        agent=stored(agent_id),
        skill=stored(skill),
        priority=priority,
        expires_at=expires_at,
    )


async def _apply_action(
    conn: Connection,
    ctx: Context,
    account_id: int,
    campaign: tuple[int, str],
    action: str | None,
) -> Outcome:
    """Start or stop the campaign, in the insert's transaction; any other action adds only."""
    campaign_id, name = campaign
    verb = (action or "").lower()
    if verb not in ("start", "stop"):
        return Added(name)
    before = await set_campaign_state(
        conn, ctx, account_id, campaign_id, "running" if verb == "start" else "stopped"
    )
    if verb == "start":
        if before.state == "running":
            return AlreadyStarted(before.name)
        return Started(before.dial_mode)
    # Stopping a stopped campaign records nothing and answers like a stop (docs/ozonetel.md).
    return Stopped(before.dial_mode)


class CampaignStateFound(msgspec.Struct, frozen=True, kw_only=True):
    """A campaign as `set_campaign_state` found it, before any change."""

    name: str
    dial_mode: str
    state: CampaignState


async def set_campaign_state(
    conn: Connection, ctx: Context, account_id: int, campaign_id: int, wanted: CampaignState
) -> CampaignStateFound:
    """Start or stop the campaign unless it already is; returns what it was before.

    Callers take the campaign lock and then the account lock before their first write (lead
    writers take campaign locks first, configuration writers none, so this order cannot
    deadlock); taking the account lock again here is free and keeps this function safe on its
    own. The state is read under it: it decides whether anything is recorded, and a rename may
    have happened since the caller's first read (the campaign lock does not stop renames).
    """
    await lock_account(conn, account_id)
    current = await conn.fetchrow(SELECT_CAMPAIGN_STATE, campaign_id)
    assert current is not None  # noqa: S101 - campaigns are never deleted
    before = CampaignStateFound(
        name=current["name"], dial_mode=current["dial_mode"], state=current["state"]
    )
    if before.state != wanted:
        await update_campaign(conn, ctx, account_id, before.name, CampaignChanges(state=wanted))
    return before
