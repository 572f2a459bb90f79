"""Vicidial's `add_lead` (non_agent_api.php): a lead into a list, its checks in Vicidial's
order, each refusal one line and a LeadRejected (docs/vicidial.md, "add_lead").

A Vicidial list is a campaign of the account (`list_id` is its numeric id). The checks: the
list is the account's, the number has 6 to 16 digits, the do-not-call registry when asked
(`dnc_check`: account-wide entries; `campaign_dnc_check`: the campaign's), then the duplicate
modes (service/vicidial_duplicates.py). Everything from the registry check on runs under the
locks of every campaign a check searches, so two adds of one number never both pass.

Calls that arrive together are decided as a group (`add_leads`, fed by the app's
AccountGroups): one transaction, one read of the registry and of the numbers' holders, each
call decided in arrival order exactly as it would be alone (a call sees the leads the calls
before it in the group added), and one insert of all the leads let in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
import phonenumbers
from phonenumbers import timezone as phone_timezones

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import ANY_VERSION
from lead_ledger.ledger.events import ExtraValue, LeadRejected
from lead_ledger.ledger.locks import lock_campaigns
from lead_ledger.ledger.phones import dedupe_key, with_country_code
from lead_ledger.service import dnc
from lead_ledger.service.account_groups import AccountGroups
from lead_ledger.service.campaign_locks import LocksOutgrown, retried_until_locked
from lead_ledger.service.dialled_numbers import Dialled, record_dialled
from lead_ledger.service.dnc import DncBlock
from lead_ledger.service.lead_inserts import NewLead, insert_lead_batch, insert_lead_groups
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.vicidial_duplicates import (
    Candidate,
    Holder,
    Lists,
    Mode,
    duplicate_line,
    duplicate_modes,
    first_duplicate,
    holders_of,
    new_holders,
)
from lead_ledger.service.vicidial_fields import given_values, lead_fields
from lead_ledger.service.vicidial_params import Params, dialable, join, line
from lead_ledger.service.writer import (
    Context,
    PendingAppend,
    account_digest,
    record,
    rejections_stream,
    stream_append,
)

FUNCTION: Final = "add_lead"
MIN_PHONE_DIGITS, MAX_PHONE_DIGITS = 6, 16
DEFAULT_LIST_ID: Final = "999"


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
        dnc_check=params.dnc_option("dnc_check"),
        campaign_dnc_check=params.dnc_option("campaign_dnc_check"),
        campaign_name=params.get("campaign_id"),
        duplicate_check=params.get("duplicate_check"),
        now=now,
    )


@dataclass(slots=True)
class _Call:
    """One call of a group, as it is decided: its answer line once known, or the duplicate
    found (rendered once the group's new leads have ids), and what to record of a refusal."""

    ctx: Context
    request: Request
    list_id: int | None = None
    candidate: Candidate | None = None
    dnc_campaign: int | None = None
    answer: str | None = None
    duplicate: tuple[Mode, Holder] | None = None
    reason: str | None = None
    block: DncBlock | None = None
    gmt: str = "0.00"
    index: int | None = None  # among the leads let in
    # The number as its phone_code dials it, when that is another number than its key (read in
    # the account's region, as Vicidial compares phone_number): the registry checks both.
    dialled_key: str | None = None


async def add_leads(
    conn: Connection, account_id: int, calls: Sequence[tuple[Context, Request]]
) -> list[list[str]]:
    """Each call's lines, the calls decided in order in one transaction."""
    return await retried_until_locked(conn, lambda: _add_leads(conn, account_id, calls))


async def _add_leads(
    conn: Connection, account_id: int, calls: Sequence[tuple[Context, Request]]
) -> list[list[str]]:
    lists, region, zone = await read_account(conn, account_id)
    decided = [_checked(_Call(ctx, request), lists, region, zone) for ctx, request in calls]
    open_calls = [c for c in decided if c.candidate is not None]
    async with write_transaction(conn):
        if open_calls:
            locked = await lock_campaigns(conn, {i for c in open_calls for i in _locked(c, lists)})
            lists = await _lists_under_locks(conn, account_id, open_calls, lists, set(locked))
            await _decide(conn, account_id, open_calls, lists)
            let_in = [c for c in open_calls if c.answer is None and c.duplicate is None]
            ids = await _insert(conn, account_id, let_in, region)
            dialled = {ids[id(c)]: _dialled(c.request.phone, c.request.values) for c in let_in}
            await record_dialled(conn, account_id, region, dialled)
            for call in let_in:
                call.answer = _added(call, ids[id(call)])
            for call in open_calls:
                if call.duplicate is not None and call.candidate is not None:
                    mode, hit = call.duplicate
                    if hit.lead_id < 0:  # a lead of this group: its id is known now
                        hit = hit._replace(lead_id=ids[id(let_in[-hit.lead_id - 1])])
                    call.answer = duplicate_line(FUNCTION, call.candidate, mode, hit)
                    call.duplicate = (mode, hit)
        await _record_refusals(conn, account_id, decided)
    return [[call.answer or ""] for call in decided]


# What a group needs of the account, in one round trip: its lists, region and time zone.
SELECT_ACCOUNT: Final = """
SELECT s.default_region, s.office_hours->>'timezone' AS timezone,
       array(SELECT c.campaign_id FROM campaigns c WHERE c.account_id = s.account_id
             ORDER BY c.campaign_id) AS ids,
       array(SELECT c.name FROM campaigns c WHERE c.account_id = s.account_id
             ORDER BY c.campaign_id) AS names,
       array(SELECT c.vicidial_campaign FROM campaigns c WHERE c.account_id = s.account_id
             ORDER BY c.campaign_id) AS groups
FROM settings s WHERE s.account_id = $1
"""


async def read_account(
    conn: Connection, account_id: int
) -> tuple[Lists, str | None, ZoneInfo | None]:
    """The account's Vicidial lists, its default region and its office-hours time zone."""
    row = await conn.fetchrow(SELECT_ACCOUNT, account_id)
    if row is None:  # an account always has its settings; one without has no lists either
        return Lists(names={}, groups={}), None, None
    lists = Lists(
        names=dict(zip(row["ids"], row["names"], strict=True)),
        groups=dict(zip(row["ids"], row["groups"], strict=True)),
    )
    return lists, row["default_region"], _zone(row["timezone"] or "")


def _checked(call: _Call, lists: Lists, region: str | None, zone: ZoneInfo | None) -> _Call:
    """The checks before any lock: the list is the account's, the number's length."""
    request = call.request
    text = request.list_id
    list_id = int(text) if text.isdigit() and len(text) < 19 else 0
    if list_id not in lists.names:
        call.answer = line("ERROR", f"{FUNCTION} NOT AN ALLOWED LIST ID", join(request.phone, text))
        call.reason = "list_not_allowed"
        return call
    call.list_id = list_id
    if not MIN_PHONE_DIGITS <= len(request.phone) <= MAX_PHONE_DIGITS or not dialable(
        request.phone
    ):
        data = join(request.phone, request.user)
        call.answer = line("ERROR", f"{FUNCTION} INVALID PHONE NUMBER LENGTH", data)
        call.reason = "invalid_phone"
        return call
    by_name = {name: campaign_id for campaign_id, name in lists.names.items()}
    call.dnc_campaign = by_name.get(request.campaign_name, list_id)
    call.gmt = gmt_offset(request.phone, region, zone)
    dialled = with_country_code(request.values.get("phone_code", ""), request.phone)
    call.candidate = Candidate(
        phone=request.phone,
        key=dedupe_key(request.phone, region),
        alt_key=dedupe_key(request.values.get("alt_phone", ""), region),
        list_id=list_id,
        values=request.values,
        duplicate_check=request.duplicate_check,
        now=request.now,
    )
    if dialled is not None and dialled != call.candidate.key:
        call.dialled_key = dialled
    return call


def _locked(call: _Call, lists: Lists) -> set[int]:
    """The campaigns a call's checks read: its list, its DNC campaign, what its modes search."""
    if call.list_id is None or call.dnc_campaign is None:
        return set()
    modes = duplicate_modes(call.request.duplicate_check)
    searched = {i for mode in modes for i in lists.scope(call.list_id, mode.scope)}
    return {call.list_id, call.dnc_campaign, *searched}


async def _lists_under_locks(
    conn: Connection, account_id: int, calls: Sequence[_Call], lists: Lists, locked: set[int]
) -> Lists:
    """The lists the calls' searches cover, as they are once the locks are held: read again
    when a call searches its Vicidial campaign (CAMP) or every list (SYS), since a list may
    have been created (or joined the campaign) after the first read, and its leads are to be
    searched too. LocksOutgrown when such a list is not locked: the calls run again."""
    if all(m.scope == "LIST" for c in calls for m in duplicate_modes(c.request.duplicate_check)):
        return lists
    now, _, _ = await read_account(conn, account_id)
    if any(not _locked(call, now) <= locked for call in calls):
        raise LocksOutgrown
    return now


async def _decide(conn: Connection, account_id: int, calls: Sequence[_Call], lists: Lists) -> None:
    """The registry and duplicate checks of each call, in order, under the locks: a call sees
    the leads that the calls before it let in."""
    asks_dnc = [c for c in calls if c.request.dnc_check or c.request.campaign_dnc_check]
    registry = dnc.Blocking({})
    if asks_dnc:
        digest = await account_digest(conn, account_id)
        keys = [c.candidate.key for c in asks_dnc if c.candidate is not None]
        keys += [c.dialled_key for c in asks_dnc if c.dialled_key is not None]
        registry = await dnc.blocking(conn, account_id, digest, keys)
    searching = [c for c in calls if duplicate_modes(c.request.duplicate_check)]
    holders: dict[str, list[Holder]] = {}
    if searching:
        campaigns = {i for c in searching for i in _locked(c, lists)}
        keys = [k for c in searching if c.candidate for k in (c.candidate.key, c.candidate.alt_key)]
        holders = await holders_of(conn, campaigns, keys)
    let_in = 0
    for call in calls:
        candidate = call.candidate
        if candidate is None:
            continue
        entries = registry.of_key(candidate.key)
        if call.dialled_key is not None:
            entries += registry.of_key(call.dialled_key)
        if _dnc_refused(call, entries, lists):
            continue
        found = first_duplicate(candidate, lists, holders)
        if found is not None:
            call.duplicate, call.reason = found, "duplicate"
            continue
        let_in += 1
        for key, holder in new_holders(candidate, -let_in).items():
            holders.setdefault(key, []).append(holder)


def _dnc_refused(call: _Call, entries: Sequence[DncBlock], lists: Lists) -> bool:
    """`dnc_check`: an account-wide entry blocks the number; `campaign_dnc_check`: an entry of
    the campaign (`campaign_id` when it names one, else the list's) does."""
    request = call.request
    for block in entries:
        if request.dnc_check and block.campaign_id is None:
            data = join(request.phone, request.user)
            call.answer = line("ERROR", f"{FUNCTION} PHONE NUMBER IN DNC", data)
            call.reason, call.block = "dnc", block
            return True
    for block in entries:
        if (
            request.campaign_dnc_check
            and block.campaign_id is not None
            and (block.campaign_id == call.dnc_campaign)
        ):
            campaign = lists.names[block.campaign_id]
            data = join(request.phone, campaign, request.user)
            call.answer = line("ERROR", f"{FUNCTION} PHONE NUMBER IN CAMPAIGN DNC", data)
            call.reason, call.block = "dnc", block
            return True
    return False


async def _insert(
    conn: Connection, account_id: int, calls: Sequence[_Call], region: str | None
) -> dict[int, int]:
    """Insert the leads let in, every list's in one call; their ids, by call."""
    by_list: dict[int, list[_Call]] = {}
    for call in calls:
        if call.list_id is not None:
            by_list.setdefault(call.list_id, []).append(call)
    if not by_list:
        return {}
    results = await insert_lead_groups(
        conn,
        account_id=account_id,
        groups={
            list_id: [_new_lead(c, account_id) for c in members]
            for list_id, members in by_list.items()
        },
        region=region,
    )
    return {
        id(call): results[list_id].inserted[i]
        for list_id, members in by_list.items()
        for i, call in enumerate(members)
    }


def _new_lead(call: _Call, account_id: int) -> NewLead:
    # Not refused for the registry here (the call asked for no check, or passed its own):
    # a blocked number marks the lead instead, so it is never dialled.
    return NewLead(
        fields=lead_fields(call.request.phone, call.request.values, call.gmt),
        ctx=call.ctx,
        rejections_stream=rejections_stream(call.ctx, account_id),
        blocked_marked=True,
        also_blocked_as=[call.dialled_key] if call.dialled_key is not None else [],
    )


def _dialled(phone: str, values: dict[str, str]) -> Dialled:
    """The code a lead is dialled with and its numbers, as the call gives them."""
    return values.get("phone_code", ""), [phone, values.get("alt_phone", "")]


def _added(call: _Call, lead_id: int) -> str:
    request = call.request
    data = join(request.phone, call.list_id, lead_id, call.gmt, request.user)
    return line("SUCCESS", f"{FUNCTION} LEAD HAS BEEN ADDED", data)


async def insert_lead(
    conn: Connection,
    ctx: Context,
    account_id: int,
    list_id: int,
    phone: str,
    values: dict[str, str],
) -> tuple[int, str]:
    """Insert a lead whose checks are done (update_lead's insert_if_not_found: under the
    list's lock, in the caller's transaction); its id and gmt offset. A blocked number marks
    the lead."""
    _, region, zone = await read_account(conn, account_id)
    gmt = gmt_offset(phone, region, zone)
    dialled = with_country_code(values.get("phone_code", ""), phone)
    lead = NewLead(
        fields=lead_fields(phone, values, gmt),
        ctx=ctx,
        rejections_stream=rejections_stream(ctx, account_id),
        blocked_marked=True,
        also_blocked_as=[dialled] if dialled is not None else [],
    )
    result = await insert_lead_batch(
        conn, account_id=account_id, campaign_id=list_id, leads=[lead], region=region
    )
    lead_id = result.inserted[0]
    await record_dialled(conn, account_id, region, {lead_id: _dialled(phone, values)})
    return lead_id, gmt


def gmt_offset(phone: str, region: str | None, account_zone: ZoneInfo | None) -> str:
    """Hours from UTC now, as Vicidial prints them (`5.50`, `-5.00`): the number's time zone
    when phonenumbers knows exactly one, else the account's office-hours zone, else 0."""
    zone = _zone_of_number(phone, region) or account_zone
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
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


async def _record_refusals(conn: Connection, account_id: int, calls: Sequence[_Call]) -> None:
    """Each refusal in the audit trail: a LeadRejected on its request's stream."""
    appends: list[PendingAppend] = []
    for call in calls:
        if call.reason is None:
            continue
        existing = [call.duplicate[1].lead_id] if call.duplicate is not None else []
        appends.append(_refusal(call, account_id, existing))
    if appends:
        await record(conn, appends)


def _refusal(call: _Call, account_id: int, existing: list[int]) -> PendingAppend:
    request, block = call.request, call.block
    row: dict[str, ExtraValue] = {"phone_number": request.phone, **request.values}
    refusal = LeadRejected(
        account_id=account_id,
        campaign_id=call.list_id,
        reason=call.reason or "",
        row=row,
        existing_lead_ids=existing,
        dnc_entry_id=None if block is None else block.entry_id,
        dnc_scope=None if block is None else block.scope,
    )
    stream = rejections_stream(call.ctx, account_id)
    return stream_append(call.ctx, stream, ANY_VERSION, [refusal], account_id=account_id)


def vicidial_adds(pool: asyncpg.Pool) -> AccountGroups[int, tuple[Context, Request], list[str]]:
    """The app's add_lead calls, decided in groups per account, one connection a group."""

    async def write(account_id: int, calls: Sequence[tuple[Context, Request]]) -> list[list[str]]:
        async with pool.acquire() as conn:
            return await add_leads(conn, account_id, calls)

    return AccountGroups(write)
