"""Vicidial add_lead's duplicate checks (`duplicate_check`; docs/vicidial.md, "add_lead").

Modes are joined with `-`; each is a case-insensitive substring of the value and they are
tried in Vicidial's order whatever the order written, the first that finds a lead ending the
request. LIST searches the list, CAMP the lists of its Vicidial campaign, SYS every list of the
account. Numbers compare by dedupe key; a lead holds a number as its phone_number (its first
number) or its alt_phone (its second).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final, Literal, NamedTuple

from lead_ledger.ledger.connection import Connection
from lead_ledger.service.vicidial_params import join, line

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
PHONE, ALT = 1, 2  # where a lead holds a number: its phone_number, its alt_phone

# Live leads holding any of these numbers in these campaigns (one probe of the contact index
# each), with where they hold it, oldest first.
SELECT_HOLDERS: Final = """
SELECT c.value AS key, l.lead_id, l.campaign_id,
       array_position(l.dedupe_keys, c.value) AS position, l.entry_at,
       coalesce(l.title, '') AS title, coalesce(l.first_name, '') AS first_name,
       coalesce(l.last_name, '') AS last_name
FROM contacts c JOIN leads l USING (lead_id)
WHERE c.kind = 'phone' AND c.value = ANY($2::text[]) AND c.campaign_id = ANY($1::bigint[])
ORDER BY l.lead_id
"""


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


class Mode(NamedTuple):
    kind: str
    scope: Scope


def duplicate_modes(check: str) -> list[Mode]:
    """The modes `duplicate_check` asks for, in the order Vicidial tests them."""
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
    """A lead holding a number; `lead_id` is negative for a lead of the same group not yet
    written (its id is known once the group is)."""

    lead_id: int
    campaign_id: int
    position: int | None
    entered_at: datetime | None  # None: entered now, in this group
    title: str
    first_name: str
    last_name: str


class Candidate(NamedTuple):
    """A lead to add, as its duplicate checks see it."""

    phone: str
    key: str
    alt_key: str
    list_id: int
    values: Mapping[str, str]  # its fields by Vicidial name
    duplicate_check: str
    now: datetime


async def holders_of(
    conn: Connection, campaigns: Iterable[int], keys: Iterable[str]
) -> dict[str, list[Holder]]:
    """The live leads holding each number in these campaigns, oldest first."""
    found: dict[str, list[Holder]] = {}
    wanted = sorted({k for k in keys if k})
    if not wanted:
        return found
    for row in await conn.fetch(SELECT_HOLDERS, sorted(set(campaigns)), wanted):
        holder = Holder(*list(row)[1:])
        found.setdefault(row["key"], []).append(holder)
    return found


def first_duplicate(
    candidate: Candidate, lists: Lists, holders: Mapping[str, Sequence[Holder]]
) -> tuple[Mode, Holder] | None:
    """The first mode that finds a lead, and the lead (the oldest it finds)."""
    days = duplicate_days(candidate.duplicate_check)
    since = None if days is None else candidate.now - timedelta(days=days)
    for mode in duplicate_modes(candidate.duplicate_check):
        scope = lists.scope(candidate.list_id, mode.scope)
        key = candidate.alt_key if mode.kind == "TITLEALTPHONE" else candidate.key
        for holder in holders.get(key, ()) if key else ():
            recent = since is None or holder.entered_at is None or holder.entered_at > since
            if recent and holder.campaign_id in scope and _matches(mode, candidate, holder):
                return mode, holder
    return None


def _matches(mode: Mode, candidate: Candidate, holder: Holder) -> bool:
    values = candidate.values
    match mode.kind:
        case "":
            return holder.position == PHONE
        case "PHONEALT":
            return holder.position in (PHONE, ALT)
        case "TITLEALTPHONE":
            return holder.position == ALT and holder.title == values.get("title", "")
        case _:  # NAMEPHONE
            return (
                holder.position == PHONE
                and holder.first_name == values.get("first_name", "")
                and holder.last_name == values.get("last_name", "")
            )


def duplicate_line(function: str, candidate: Candidate, mode: Mode, hit: Holder) -> str:
    """Vicidial's line for a duplicate: the mode's values, the list and the lead found, then
    the lead's list outside LIST modes, then (PHONEALT) which of its numbers matched."""
    values, phone = candidate.values, candidate.phone
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
    data: list[object] = [*named, candidate.list_id, hit.lead_id]
    if mode.scope != "LIST":
        data.append(hit.campaign_id)
    if mode.kind == "PHONEALT":
        data.append("PHONE" if hit.position == PHONE else "ALT")
    return line("ERROR", f"{function} DUPLICATE {what} {IN_SCOPE[mode.scope]}", join(*data))


def new_holders(candidate: Candidate, placeholder: int) -> dict[str, Holder]:
    """The holders a candidate becomes once added (its numbers by key), for the candidates
    after it in the same group."""
    values = candidate.values
    fields = (values.get("title", ""), values.get("first_name", ""), values.get("last_name", ""))
    made = {candidate.key: Holder(placeholder, candidate.list_id, PHONE, None, *fields)}
    if candidate.alt_key and candidate.alt_key != candidate.key:
        made[candidate.alt_key] = Holder(placeholder, candidate.list_id, ALT, None, *fields)
    return made
