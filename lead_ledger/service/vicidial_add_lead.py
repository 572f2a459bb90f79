"""Vicidial's `add_lead` (non_agent_api.php): one lead into a list, its checks in Vicidial's
order, each refusal one line and a LeadRejected (docs/vicidial.md, "add_lead").

A Vicidial list is a campaign of the account (`list_id` is its numeric id). The checks: the
list is the account's, the number has 6 to 16 digits, the do-not-call registry when asked
(`dnc_check`: account-wide entries; `campaign_dnc_check`: the campaign's), then the duplicate
modes of `duplicate_check`, in Vicidial's order, the first hit ending the request. Everything
from the registry check on runs under the locks of every campaign a check searches, so two
adds of one number never both pass a duplicate check.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import ANY_VERSION
from lead_ledger.ledger.events import ExtraValue, LeadRejected
from lead_ledger.ledger.locks import lock_campaigns
from lead_ledger.ledger.phones import dedupe_key
from lead_ledger.service import dnc
from lead_ledger.service.account_reads import default_region
from lead_ledger.service.dnc import DncBlock
from lead_ledger.service.lead_inserts import NewLead, insert_lead_batch
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.vicidial_fields import given_values, lead_fields
from lead_ledger.service.vicidial_params import Params, join, line
from lead_ledger.service.writer import Context, account_digest, record, stream_append

FUNCTION: Final = "add_lead"
MIN_PHONE_DIGITS, MAX_PHONE_DIGITS = 6, 16
DEFAULT_LIST_ID: Final = "999"
Scope = Literal["LIST", "CAMP", "SYS"]
SCOPES: Final[tuple[Scope, ...]] = ("LIST", "CAMP", "SYS")
# The duplicate modes, in the order Vicidial tests them: each kind, list then campaign then
# system.
KINDS: Final = ("", "PHONEALT", "TITLEALTPHONE", "NAMEPHONE")
IN_SCOPE: Final[dict[Scope, str]] = {
    "LIST": "IN LIST",
    "CAMP": "IN CAMPAIGN LISTS",
    "SYS": "IN SYSTEM",
}
DAYS: Final = (1, 2, 3, 7, 14, 15, 21, 28, 30, 60, 90, 180, 360)

# Live leads holding a number (one probe of the contact index), with where they hold it: 1 is
# the lead's phone_number, 2 its alt_phone (the lead's first and second numbers).
SELECT_HOLDERS: Final = """
SELECT l.lead_id, l.campaign_id, array_position(l.dedupe_keys, $2) AS position,
       coalesce(l.title, '') AS title, coalesce(l.first_name, '') AS first_name,
       coalesce(l.last_name, '') AS last_name
FROM contacts c JOIN leads l USING (lead_id)
WHERE c.kind = 'phone' AND c.value = $2 AND c.campaign_id = ANY($1::bigint[])
  AND ($3::integer IS NULL OR l.entry_at > $4::timestamptz - make_interval(days => $3))
ORDER BY l.lead_id
"""
SELECT_LISTS: Final = """
SELECT campaign_id, name, vicidial_campaign FROM campaigns WHERE account_id = $1
"""
SELECT_TIMEZONE: Final = "SELECT office_hours->>'timezone' FROM settings WHERE account_id = $1"


class Lists(NamedTuple):
    """The account's Vicidial lists: its campaigns, by id, with their names and the Vicidial
    campaign each belongs to (None: a campaign of its own)."""

    names: dict[int, str]
    groups: dict[int, str | None]

    def scope(self, list_id: int, scope: Scope) -> set[int]:
        """The lists LIST, CAMP (those of the list's Vicidial campaign) and SYS search."""
        group = self.groups.get(list_id)
        if scope == "SYS":
            return set(self.names)
        if scope == "CAMP" and group is not None:
            return {i for i, g in self.groups.items() if g == group}
        return {list_id}


async def account_lists(conn: Connection, account_id: int) -> Lists:
    rows = await conn.fetch(SELECT_LISTS, account_id)
    return Lists(
        names={r["campaign_id"]: r["name"] for r in rows},
        groups={r["campaign_id"]: r["vicidial_campaign"] for r in rows},
    )


class Mode(NamedTuple):
    kind: str
    scope: Scope


def duplicate_modes(check: str) -> list[Mode]:
    """The modes `duplicate_check` asks for, in the order Vicidial tests them: each a
    case-insensitive substring of the value (modes are written joined with `-`)."""
    upper = check.upper()
    return [Mode(kind, scope) for kind in KINDS for scope in SCOPES if f"DUP{kind}{scope}" in upper]


def duplicate_days(check: str) -> int | None:
    """The `<N>DAY` suffix: only leads entered in the last N days count. Vicidial tests the
    suffixes in increasing order and the last that matches wins (`21DAY` also holds `1DAY`)."""
    upper = check.upper()
    found = None
    for days in DAYS:
        if f"{days}DAY" in upper:
            found = days
    return found


class Holder(NamedTuple):
    lead_id: int
    campaign_id: int
    position: int | None
    title: str
    first_name: str
    last_name: str


class Request(NamedTuple):
    """What add_lead reads from the call."""

    user: str
    phone: str
    list_id: str
    values: dict[str, str]  # the lead's fields by Vicidial name, cut to their widths
    dnc_check: bool
    campaign_dnc_check: bool
    campaign_name: str
    duplicate_check: str
    now: datetime  # the clock `<N>DAY` counts back from


def request_of(params: Params, user: str, now: datetime) -> Request:
    return Request(
        user=user,
        phone=params.get("phone_number"),
        list_id=params.get("list_id") or DEFAULT_LIST_ID,
        values=given_values(params),
        dnc_check=params.flag("dnc_check"),
        campaign_dnc_check=params.flag("campaign_dnc_check"),
        campaign_name=params.get("campaign_id"),
        duplicate_check=params.get("duplicate_check"),
        now=now,
    )


async def add_lead(conn: Connection, ctx: Context, account_id: int, request: Request) -> list[str]:
    """The lines add_lead answers: one refusal, or the lead added."""
    user, phone = request.user, request.phone
    lists = await account_lists(conn, account_id)
    campaigns = lists.names
    list_id = int(request.list_id) if request.list_id.isdigit() and len(request.list_id) < 19 else 0
    if list_id not in campaigns:
        await _reject(conn, ctx, account_id, None, request, "list_not_allowed")
        return [line("ERROR", f"{FUNCTION} NOT AN ALLOWED LIST ID", join(phone, request.list_id))]
    if not MIN_PHONE_DIGITS <= len(phone) <= MAX_PHONE_DIGITS:
        await _reject(conn, ctx, account_id, list_id, request, "invalid_phone")
        return [line("ERROR", f"{FUNCTION} INVALID PHONE NUMBER LENGTH", join(phone, user))]
    region = await default_region(conn, account_id)
    key = dedupe_key(phone, region)
    alt_key = dedupe_key(request.values.get("alt_phone", ""), region)
    by_name = {name: campaign_id for campaign_id, name in campaigns.items()}
    dnc_campaign = by_name.get(request.campaign_name, list_id)
    modes = duplicate_modes(request.duplicate_check)
    searched = {i for mode in modes for i in lists.scope(list_id, mode.scope)}
    async with write_transaction(conn):
        await lock_campaigns(conn, {list_id, dnc_campaign, *searched})
        refusal = await _dnc_refusal(conn, account_id, key, request, dnc_campaign, campaigns)
        if refusal is None and modes:
            refusal = await _duplicate_refusal(conn, request, (key, alt_key), list_id, lists)
        if refusal is not None:
            text, reason, block, existing = refusal
            await _reject(conn, ctx, account_id, list_id, request, reason, block, existing)
            return [text]
        lead_id, gmt = await insert_lead(conn, ctx, account_id, list_id, phone, request.values)
    data = join(phone, list_id, lead_id, gmt, user)
    return [line("SUCCESS", f"{FUNCTION} LEAD HAS BEEN ADDED", data)]


async def insert_lead(
    conn: Connection,
    ctx: Context,
    account_id: int,
    list_id: int,
    phone: str,
    values: dict[str, str],
) -> tuple[int, str]:
    """Insert a lead whose checks are done (under the list's lock, in the caller's
    transaction); its id and gmt offset. A number the registry blocks is not refused here (the
    caller asked for no check, or made its own) but marked, so the lead is never dialled."""
    region = await default_region(conn, account_id)
    gmt = await gmt_offset(conn, account_id, phone, region)
    lead = NewLead(
        fields=lead_fields(phone, values, gmt),
        ctx=ctx,
        rejections_stream=_rejections_stream(ctx),
        blocked_marked=True,
    )
    result = await insert_lead_batch(
        conn, account_id=account_id, campaign_id=list_id, leads=[lead], region=region
    )
    return result.inserted[0], gmt


Refusal = tuple[str, str, DncBlock | None, list[int]]


async def _dnc_refusal(
    conn: Connection,
    account_id: int,
    key: str,
    request: Request,
    dnc_campaign: int,
    campaigns: dict[int, str],
) -> Refusal | None:
    """`dnc_check`: an account-wide entry blocks the number; `campaign_dnc_check`: an entry of
    the campaign (`campaign_id` when it names one, else the list's) does."""
    if not (request.dnc_check or request.campaign_dnc_check):
        return None
    digest = await account_digest(conn, account_id)
    entries = (await dnc.blocking(conn, account_id, digest, [key])).of_key(key)
    if request.dnc_check:
        for block in entries:
            if block.campaign_id is None:
                text = line(
                    "ERROR", f"{FUNCTION} PHONE NUMBER IN DNC", join(request.phone, request.user)
                )
                return text, "dnc", block, []
    if request.campaign_dnc_check:
        for block in entries:
            if block.campaign_id == dnc_campaign:
                data = join(request.phone, campaigns[dnc_campaign], request.user)
                text = line("ERROR", f"{FUNCTION} PHONE NUMBER IN CAMPAIGN DNC", data)
                return text, "dnc", block, []
    return None


async def _duplicate_refusal(
    conn: Connection,
    request: Request,
    keys: tuple[str, str],
    list_id: int,
    lists: Lists,
) -> Refusal | None:
    """The first duplicate mode that finds a lead, in Vicidial's order: `keys` are the phone
    number's and the alt phone's."""
    days = duplicate_days(request.duplicate_check)
    key, alt_key = keys
    modes = duplicate_modes(request.duplicate_check)
    searched = {i for mode in modes for i in lists.scope(list_id, mode.scope)}
    campaigns, now = sorted(searched), request.now
    holders = await _holders(conn, campaigns, key, days, now)
    alt_holders = await _holders(conn, campaigns, alt_key, days, now) if alt_key else []
    for mode in modes:
        scope = lists.scope(list_id, mode.scope)
        hit = _first_hit(mode, request, scope, holders, alt_holders)
        if hit is not None:
            return _duplicate_line(mode, request, list_id, hit), "duplicate", None, [hit.lead_id]
    return None


async def _holders(
    conn: Connection, campaigns: list[int], key: str, days: int | None, now: datetime
) -> list[Holder]:
    rows = await conn.fetch(SELECT_HOLDERS, campaigns, key, days, now)
    return [Holder(*row) for row in rows]


def _first_hit(
    mode: Mode,
    request: Request,
    scope: set[int],
    holders: Sequence[Holder],
    alt_holders: Sequence[Holder],
) -> Holder | None:
    values = request.values
    for holder in alt_holders if mode.kind == "TITLEALTPHONE" else holders:
        if holder.campaign_id not in scope:
            continue
        match mode.kind:
            case "":
                found = holder.position == 1
            case "PHONEALT":
                found = holder.position in (1, 2)
            case "TITLEALTPHONE":
                found = holder.position == 2 and holder.title == values.get("title", "")
            case _:  # NAMEPHONE
                found = (
                    holder.position == 1
                    and holder.first_name == values.get("first_name", "")
                    and holder.last_name == values.get("last_name", "")
                )
        if found:
            return holder
    return None


def _duplicate_line(mode: Mode, request: Request, list_id: int, hit: Holder) -> str:
    """Vicidial's line for a duplicate: the mode's values, the list and the lead found, then
    the lead's list outside LIST modes, then (PHONEALT) which of its numbers matched."""
    values, phone = request.values, request.phone
    subject = {
        "": ("PHONE NUMBER", [phone]),
        "PHONEALT": ("PHONE NUMBER", [phone]),
        "TITLEALTPHONE": (
            "TITLE ALT_PHONE",
            [values.get("title", ""), values.get("alt_phone", "")],
        ),
        "NAMEPHONE": (
            "NAME PHONE",
            [values.get("first_name", ""), values.get("last_name", ""), phone],
        ),
    }
    what, named = subject[mode.kind]
    data: list[object] = [*named, list_id, hit.lead_id]
    if mode.scope != "LIST":
        data.append(hit.campaign_id)
    if mode.kind == "PHONEALT":
        data.append("PHONE" if hit.position == 1 else "ALT")
    reason = f"{FUNCTION} DUPLICATE {what} {IN_SCOPE[mode.scope]}"
    return line("ERROR", reason, join(*data))


async def gmt_offset(conn: Connection, account_id: int, phone: str, region: str | None) -> str:
    """Hours from UTC now, as Vicidial prints them (`5.50`, `-5.00`): the number's time zone
    when phonenumbers knows exactly one, else the account's office-hours zone, else 0."""
    zone = _zone_of_number(phone, region)
    if zone is None:
        name = await conn.fetchval(SELECT_TIMEZONE, account_id)
        zone = _zone(name) if name else None
    if zone is None:
        return "0.00"
    offset = datetime.now(UTC).astimezone(zone).utcoffset()
    hours = 0.0 if offset is None else offset.total_seconds() / 3600
    return f"{hours:.2f}"


def _zone_of_number(phone: str, region: str | None) -> ZoneInfo | None:
    try:
        parsed = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return None
    zones = [z for z in phone_timezones.time_zones_for_number(parsed) if z != "Etc/Unknown"]
    return _zone(zones[0]) if len(zones) == 1 else None


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


async def _reject(
    conn: Connection,
    ctx: Context,
    account_id: int,
    campaign_id: int | None,
    request: Request,
    reason: str,
    block: DncBlock | None = None,
    existing: list[int] | None = None,
) -> None:
    """The refusal in the audit trail: a LeadRejected on the request's stream."""
    row: dict[str, ExtraValue] = {"phone_number": request.phone, **request.values}
    refusal = LeadRejected(
        account_id=account_id,
        campaign_id=campaign_id,
        reason=reason,
        row=row,
        existing_lead_ids=existing or [],
        dnc_entry_id=None if block is None else block.entry_id,
        dnc_scope=None if block is None else block.scope,
    )
    stream = _rejections_stream(ctx)
    async with write_transaction(conn):
        await record(
            conn, [stream_append(ctx, stream, ANY_VERSION, [refusal], account_id=account_id)]
        )


def _rejections_stream(ctx: Context) -> str:
    return f"request-{ctx.request_id or uuid.uuid4().hex}"
