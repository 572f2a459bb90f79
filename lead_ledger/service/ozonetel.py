"""Ozonetel CloudAgent AddCampaignData: one number into an outbound campaign (seed 002).

The vendor checks a request in a fixed order; `check` replays that order exactly and
names the first check that failed (`Refusal`), or what was done (docs/ozonetel.md lists both;
api/ozonetel_add.py holds the vendor's answer to each).
It is on a hot path, so everything the checks need (the credential, its account, the
settings, the campaign, whether the agent and skill exist) comes from one query, which reads
the contexts of many requests at once. A plain add is checked and written with the requests of
the same API key that arrive together (service/ozonetel_adds.py); an add with a campaign action
runs alone on one connection: the read, the rate-limit hit (outside any transaction), then the
insert and the action in one transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Final

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import CampaignState, LeadFields, OfficeHours, RateLimits
from lead_ledger.ledger.locks import lock_campaigns
from lead_ledger.service import rate_limits
from lead_ledger.service.accounts import CampaignChanges, lock_account, update_campaign
from lead_ledger.service.lead_inserts import NewLead, insert_lead_batch
from lead_ledger.service.ozonetel_values import (
    PHONE,
    Scalar,
    given,
    key_matches,
    lookup,
    names_account,
    parse_expiry,
    parse_priority,
    stored,
    text_of,
    wants_duplicate_check,
)
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context, Origin, rejections_stream

BUCKET: Final = "ozonetel_add"

# Everything the checks need, in one round trip, for one request or several with one API key:
# a row per request (`n`, from 1, in the order of the arrays), none when the key is no ozonetel
# credential. The campaign, agent and skill are looked up in the key's own account only, so
# another account's names behave exactly like missing ones. $1 the key's digest, $2 campaign
# names, $3 agent ids, $4 skill names.
SELECT_REQUEST_CONTEXTS: Final = """
SELECT r.n, c.account_id, c.credential_id, c.key_sha256, a.name AS account_name,
       s.api_authentication, s.office_hours, s.rate_limits, s.default_region,
       k.campaign_id, k.name AS campaign_name, k.direction, k.assignment, k.dial_mode,
       EXISTS (SELECT 1 FROM agents g
               WHERE g.account_id = c.account_id AND g.agent_id = r.agent) AS agent_known,
       EXISTS (SELECT 1 FROM skills l
               WHERE l.account_id = c.account_id AND l.name = r.skill) AS skill_known
FROM credentials c
JOIN accounts a ON a.account_id = c.account_id
JOIN settings s ON s.account_id = c.account_id
CROSS JOIN unnest($2::text[], $3::text[], $4::text[])
    WITH ORDINALITY AS r(campaign, agent, skill, n)
LEFT JOIN campaigns k ON k.account_id = c.account_id AND k.name = r.campaign
WHERE c.key_sha256 = $1 AND c.dialect = 'ozonetel' AND NOT c.revoked
"""
# Read again under the account lock: the state decides what `action` does, and a rename may
# have happened since the first read (the campaign lock does not stop renames).
SELECT_CAMPAIGN_STATE: Final = "SELECT name, dial_mode, state FROM campaigns WHERE campaign_id = $1"


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


# The vendor's legacy add API answer for a number on its DND list; file uploads use it as the
# description of such a row.
DND_NUMBER: Final = "PhoneNumber Added is a DND Number"


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
    # After the rate limit and before checkDuplicate: the number is on the do-not-call list.
    DND_NUMBER = enum.auto()


# The vendor's text for each check one number can fail (checks 9-13 and the do-not-call list):
# AddCampaignData answers with it, and the bulk V4 job gives it as a refused row's reason.
ROW_MESSAGES: Final[dict[Refusal, str]] = {
    Refusal.BAD_PHONE: (
        "phone number should be numeric and must be between 3 to 16 digits and allows prefix +"
    ),
    Refusal.BAD_PRIORITY: "The priority value must be numeric and range from 0 to 99.",
    Refusal.BAD_DATE: (
        "Invalid date format. Please pass date in format yyyy-MM-dd HH:mm:ss or yyyy-MM-dd"
    ),
    Refusal.PAST_DATE: "The expiry date and time must be in the future",
    Refusal.NO_AGENT: "Agent Is Empty!",
    Refusal.UNKNOWN_AGENT: "Agent is not correctly mapped!",
    Refusal.BAD_SKILL: "Please provide valid skill",
    Refusal.DND_NUMBER: DND_NUMBER,
}


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


class Accepted(msgspec.Struct, frozen=True, kw_only=True):
    """A request that passed every check of its own: what remains is the rate limit, then to
    write it."""

    row: asyncpg.Record
    ctx: Context
    lead: NewLead
    action: str | None

    @property
    def rate_limit(self) -> int:
        return msgspec.json.decode(self.row["rate_limits"], type=RateLimits).ozonetel_add_per_minute


def acts_on_campaign(body: AddCampaignData) -> bool:
    """The request starts or stops its campaign besides adding the number."""
    return (text_of(body.action) or "").lower() in ("start", "stop")


async def read_contexts(
    conn: Connection, digest: str, bodies: Sequence[AddCampaignData]
) -> list[asyncpg.Record | None]:
    """Each request's context (`SELECT_REQUEST_CONTEXTS`), in order: None for every one when
    the key is no ozonetel credential."""
    campaigns = [lookup(given(body.campaignName)) for body in bodies]
    agents = [lookup(given(body.agentId)) for body in bodies]
    skills = [lookup(given(body.skill)) for body in bodies]
    rows = await conn.fetch(SELECT_REQUEST_CONTEXTS, digest, campaigns, agents, skills)
    by_request = {row["n"]: row for row in rows}
    return [by_request.get(n) for n in range(1, len(bodies) + 1)]


async def add_and_act(
    conn: Connection, digest: str, body: AddCampaignData, now: datetime, origin: Origin
) -> Outcome:
    """A request with a campaign action, alone on `conn`: checks 2-13, the rate limit (check
    14), then the add and the action in one transaction."""
    [row] = await read_contexts(conn, digest, [body])
    accepted = check(row, digest, body, now, origin)
    if isinstance(accepted, Refusal):
        return accepted
    if not await rate_limits.take(conn, accepted.row["account_id"], BUCKET, accepted.rate_limit):
        return Refusal.RATE_LIMITED
    return await _add_and_act(conn, accepted)


def check(
    row: asyncpg.Record | None,
    digest: str,
    body: AddCampaignData,
    now: datetime,
    origin: Origin,
) -> Accepted | Refusal:
    """Checks 2-13 on a request's context, in the vendor's order; the first that fails is the
    answer. Check 1 (a key at all) comes before the context is read, the rate limit (check 14)
    after these."""
    if not key_matches(row, digest):
        return Refusal.INVALID_USER
    refused = _check_caller(row, body) or _check_campaign(row, body)
    if refused is not None:
        return refused
    fields = lead_fields(
        body,
        now,
        timezone=office_timezone(row["office_hours"]),
        assignment=row["assignment"],
        agent_known=row["agent_known"],
        skill_known=row["skill_known"],
    )
    if isinstance(fields, Refusal):
        return fields
    actor = Actor(
        dialect="ozonetel", account_id=row["account_id"], credential_id=row["credential_id"]
    )
    ctx = origin.context(actor)
    lead = NewLead(
        fields=fields,
        ctx=ctx,
        check_duplicates=wants_duplicate_check(body.checkDuplicate),
        # The refusal is audited on the request's own stream (DESIGN.md 4).
        rejections_stream=rejections_stream(ctx, row["account_id"]),
    )
    return Accepted(row=row, ctx=ctx, lead=lead, action=text_of(body.action))


async def _add_and_act(conn: Connection, accepted: Accepted) -> Outcome:
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
        if result.blocked:
            return Refusal.DND_NUMBER
        if result.duplicates:
            return AlreadyExists()
        campaign = (row["campaign_id"], row["campaign_name"])
        return await _apply_action(conn, ctx, account_id, campaign, accepted.action)


def _check_caller(row: asyncpg.Record, body: AddCampaignData) -> Refusal | None:
    """Checks 3-5: the userName names the key's account, which allows this API."""
    username = given(body.userName)
    if username is None:
        return Refusal.NO_USERNAME
    if not names_account(username, row):
        return Refusal.INVALID_USER
    if row["api_authentication"] != "BASIC_AUTH":
        return Refusal.API_NOT_ALLOWED
    return None


def _check_campaign(row: asyncpg.Record, body: AddCampaignData) -> Refusal | None:
    """Checks 6-8: a campaign is named, exists in the account and is outbound."""
    if given(body.campaignName) is None:
        return Refusal.NO_CAMPAIGN
    if row["campaign_id"] is None:
        return Refusal.UNKNOWN_CAMPAIGN
    if row["direction"] != "outbound":
        return Refusal.NOT_OUTBOUND
    return None


def office_timezone(office_hours: bytes | str | None) -> str | None:
    """The time zone of the account's office hours (settings.office_hours as stored), if any."""
    if office_hours is None:
        return None
    office = msgspec.json.decode(office_hours, type=OfficeHours | None)
    return office.timezone if office else None


def lead_fields(  # noqa: PLR0911 - a return per documented answer
    body: AddCampaignData,
    now: datetime,
    *,
    timezone: str | None,
    assignment: str,
    agent_known: bool,
    skill_known: bool,
) -> LeadFields | Refusal:
    """Checks 9-13 (phone, priority, expiry, agent, skill), then the canonical lead.

    An expiry's wall time is in `timezone` (the office hours'; UTC without); `agent_known` and
    `skill_known` say whether the body's agentId and skill exist in the account, which matters
    for an agentwise (skillwise) campaign only. The bulk V4 job checks each row with it.
    """
    phone = text_of(body.phoneNumber)
    if phone is None or not PHONE.fullmatch(phone):
        return Refusal.BAD_PHONE
    priority = parse_priority(body.priority)
    if priority is None:
        return Refusal.BAD_PRIORITY
    expires_at = None
    expiry = text_of(body.expiryDate)
    if expiry is not None:
        expires_at = parse_expiry(expiry, timezone)
        if expires_at is None:
            return Refusal.BAD_DATE
        if expires_at <= now:
            return Refusal.PAST_DATE
    agent_id, skill = given(body.agentId), given(body.skill)
    if assignment == "agentwise":
        if agent_id is None:
            return Refusal.NO_AGENT
        if not agent_known:
            return Refusal.UNKNOWN_AGENT
    if assignment == "skillwise" and not skill_known:
        return Refusal.BAD_SKILL
    return LeadFields(
        phone_numbers=[phone],
        name=stored(given(body.Name)),
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
