"""Vicidial's read functions (non_agent_api.php): `lead_search`, `lead_all_info` and
`lead_field_info`, on the live leads or, with `archived_lead=Y`, on the archive
(docs/vicidial.md).

A lead is the caller's account's or it is missing. Vicidial searches `phone_number` only, so a
number finds the leads whose first number has its dedupe key (every spelling of one number is
one number); live leads are found through the contact index, archived ones by their first key.
Each lead reads as a `vicidial_list` row: the canonical fields under Vicidial's names, the rest
from `extra`, a column the lead never had as Vicidial's default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import ExtraValue
from lead_ledger.ledger.phones import dedupe_key
from lead_ledger.service.account_reads import default_region
from lead_ledger.service.dnc_marks import DNC_STATUS, MARKED_DNC
from lead_ledger.service.inputs import BIGINT_MAX, decimal
from lead_ledger.service.vicidial_fields import CANONICAL, EXTRA, NEW_STATUS, VICIDIAL_NEW
from lead_ledger.service.vicidial_login import ApiUser
from lead_ledger.service.vicidial_params import Params, join, line, piped
from lead_ledger.service.writer import Context

MIN_PHONE, MAX_PHONE = 6, 19  # lead_search and lead_all_info take numbers of 6 to 19 digits
MAX_LEAD_ID_DIGITS: Final = 11  # lead_field_info's limit on lead_id
DEFAULT_RECORDS: Final = 1000
ALL_INFO_LIMIT: Final = 1000  # lead_all_info's fixed `limit 1000`
PHONE_METHOD: Final = "PHONE_NUMBER"
MIN_METHOD: Final = 6  # a shorter search_method is Vicidial's default, PHONE_NUMBER
# lead_search's header as Vicidial prints it: its names are joined with `$DL`, which
# lead_search never sets, so they run together.
SEARCH_HEADER: Final = "search_keyrecords_foundlead_ids"
# `stage` picks lead_all_info's delimiter; anything else is a pipe.
DELIMITERS: Final = {"csv": ",", "tab": "\t", "newline": "\n", "pipe": "|"}
# What Vicidial keeps of field_name and stage, of header, and of records.
_WORD: Final = re.compile(r"[^-_0-9a-zA-Z]")
_ALNUM: Final = re.compile(r"[^0-9a-zA-Z]")
# vendor_lead_code as Vicidial cleans it (`;`, `#`, `"` dropped, an encoded `+` a space), and
# no line break, so that an echo of it stays on its one line.
_VENDOR_DROPPED: Final = re.compile(r'[;#"\r\n]')

Row = Mapping[str, Any]  # a row of leads or lead_archive, as selected below
Extra = Mapping[str, ExtraValue]


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _extra(name: str, default: str = "") -> Callable[[Row, Extra], str]:
    def read(_row: Row, extra: Extra) -> str:
        value = extra.get(name)
        return default if value is None or value == "" else str(value)

    return read


def _column(name: str) -> Callable[[Row, Extra], str]:
    return lambda row, _extra: _text(row[name])


def _phone(index: int) -> Callable[[Row, Extra], str]:
    def read(row: Row, _extra: Extra) -> str:
        phones: list[str] = row["phone_numbers"]
        return phones[index] if len(phones) > index else ""

    return read


def _status(row: Row, _extra: Extra) -> str:
    if row["dnc"]:
        return DNC_STATUS
    status = _text(row["status"])
    return VICIDIAL_NEW if status == NEW_STATUS else status


# lead_all_info's columns in Vicidial's order (non_agent_api.php L14771).
ORDER: Final = (
    "status",
    "user",
    "vendor_lead_code",
    "source_id",
    "list_id",
    "gmt_offset_now",
    "phone_code",
    "phone_number",
    "title",
    "first_name",
    "middle_initial",
    "last_name",
    "address1",
    "address2",
    "address3",
    "city",
    "state",
    "province",
    "postal_code",
    "country_code",
    "gender",
    "date_of_birth",
    "alt_phone",
    "email",
    "security_phrase",
    "comments",
    "called_count",
    "last_local_call_time",
    "rank",
    "owner",
    "entry_list_id",
    "lead_id",
)
# The columns that are not add_lead's fields (service/vicidial_fields.py maps those, one
# mapping for writes and reads). Columns a lead never had print as vicidial_list's defaults:
# 0 for the counts and ids, else empty.
_OWN: Final[dict[str, Callable[[Row, Extra], str]]] = {
    "status": _status,
    "user": _column("agent"),
    "list_id": _column("campaign_id"),
    "gmt_offset_now": _extra("gmt_offset_now"),
    "phone_number": _phone(0),
    "alt_phone": _phone(1),
    "called_count": _extra("called_count", "0"),
    "last_local_call_time": _extra("last_local_call_time"),
    "rank": _column("priority"),
    "entry_list_id": _extra("entry_list_id", "0"),
    "lead_id": _column("lead_id"),
}
COLUMNS: Final[dict[str, Callable[[Row, Extra], str]]] = {
    name: _OWN.get(name) or (_column(CANONICAL[name]) if name in CANONICAL else _extra(name))
    for name in ORDER
}
if set(COLUMNS) - set(_OWN) != {*CANONICAL, *EXTRA}:
    raise RuntimeError("lead_all_info's columns and vicidial_fields' mapping disagree")

_SELECTED: Final = (
    "l.lead_id, l.campaign_id, l.phone_numbers, l.agent, l.user_data, l.title, l.first_name,"
    " l.middle_initial, l.last_name, l.address1, l.address2, l.address3, l.city, l.state,"
    " l.postal_code, l.country, l.email, l.comments, l.priority, l.status, l.extra,"
    " l.dedupe_keys[1] AS first_key"
)
# Marks are of live leads (a lead leaves lead_dnc when it is archived): an archive copy reads
# its own status.
_LIVE: Final = f"{_SELECTED}, {MARKED_DNC} FROM leads l"
_ARCHIVE: Final = f"{_SELECTED}, false AS dnc FROM lead_archive l"

SELECT_LIVE_LEAD: Final = f"SELECT {_LIVE} WHERE l.lead_id = $2 AND l.account_id = $1"
SELECT_ARCHIVED_LEAD: Final = f"SELECT {_ARCHIVE} WHERE l.lead_id = $2 AND l.account_id = $1"
# Live leads whose first number has one of the keys: the contact index finds every lead holding
# a key, the first key keeps those that hold it first. Newest first, `$3` at most in all.
SELECT_LIVE_BY_PHONE: Final = f"""
SELECT {_LIVE}
JOIN contacts c ON c.lead_id = l.lead_id
WHERE c.kind = 'phone' AND c.value = ANY($2::text[])
  AND l.account_id = $1 AND l.dedupe_keys[1] = c.value
ORDER BY l.lead_id DESC
LIMIT $3
"""
# The archive has no contact index: the account's copies, read newest first by their index,
# filtered on the first key.
SELECT_ARCHIVED_BY_PHONE: Final = f"""
SELECT {_ARCHIVE}
WHERE l.account_id = $1 AND l.dedupe_keys[1] = ANY($2::text[])
ORDER BY l.lead_id DESC
LIMIT $3
"""


def _archived(params: Params) -> bool:
    return params.flag("archived_lead")


def _header(params: Params) -> bool:
    return _ALNUM.sub("", params.get("header")) == "YES"


def _vendor_lead_code(params: Params) -> str:
    return _VENDOR_DROPPED.sub("", params.get("vendor_lead_code")).replace("+", " ")


def _lead_id(text: str) -> int | None:
    return decimal(text, minimum=1)


async def _lead(conn: Connection, account_id: int, lead_id: int, archived: bool) -> Row | None:
    query = SELECT_ARCHIVED_LEAD if archived else SELECT_LIVE_LEAD
    row: asyncpg.Record | None = await conn.fetchrow(query, account_id, lead_id)
    return None if row is None else dict(row)


async def _by_phone(
    conn: Connection, account_id: int, keys: Sequence[str], limit: int, archived: bool
) -> list[Row]:
    """The leads whose first number has one of `keys`, newest first, `limit` at most."""
    if not keys or limit < 1:
        return []
    query = SELECT_ARCHIVED_BY_PHONE if archived else SELECT_LIVE_BY_PHONE
    return [dict(r) for r in await conn.fetch(query, account_id, sorted(set(keys)), limit)]


def vicidial_row(row: Row) -> dict[str, str]:
    """The lead as lead_all_info's columns, by Vicidial name, in Vicidial's order."""
    raw = row["extra"]
    extra: Extra = msgspec.json.decode(raw) if isinstance(raw, bytes) else {}
    return {name: read(row, extra) for name, read in COLUMNS.items()}


# --- lead_search -----------------------------------------------------------------------------


async def lead_search(
    conn: Connection, _ctx: Context, caller: ApiUser, params: Params
) -> list[str]:
    """One line per number searched (`<phone>|<count>|<lead ids joined by ->`), in the order
    given, or one refusal. Only phone numbers are searched."""
    account_id, user = caller.account_id, caller.username
    phone = params.get("phone_number")
    method = params.get("search_method")
    if len(method) < MIN_METHOD:
        method = PHONE_METHOD
    if PHONE_METHOD not in method or len(phone) < MIN_PHONE:
        # Vicidial's flags say which searches ran: the lead id's, the vendor code's, the phone's.
        data = join(
            user,
            method,
            f"{params.get('lead_id')}(0)",
            f"{_vendor_lead_code(params)}(0)",
            f"{phone}(0)",
        )
        return [line("ERROR", "lead_search NO VALID SEARCH METHOD", data)]
    # Numbers of the wrong length are left out of the search and of the answer, as Vicidial does.
    numbers = [n for n in phone.split(",") if MIN_PHONE <= len(n) <= MAX_PHONE]
    # lead_search's `limit`: 1000 unless given; past a bigint is as good as no limit.
    limit = params.number("records", default=DEFAULT_RECORDS, cap=BIGINT_MAX)
    region = await default_region(conn, account_id)
    keys = {number: dedupe_key(number, region) for number in numbers}
    found = await _by_phone(conn, account_id, list(keys.values()), limit, _archived(params))
    if not found:
        data = join(user, params.get("lead_id"), _vendor_lead_code(params), phone)
        return [piped("ERROR", "lead_search NO MATCHES FOUND IN THE SYSTEM", data)]
    by_key: dict[str, list[str]] = {}
    for row in found:
        by_key.setdefault(_text(row["first_key"]), []).append(_text(row["lead_id"]))
    lines = [SEARCH_HEADER] if _header(params) else []
    for number in numbers:
        ids = by_key.get(keys[number], [])
        lines.append(join(number, len(ids), "-".join(ids)))
    return lines


# --- lead_all_info ---------------------------------------------------------------------------


async def lead_all_info(
    conn: Connection, _ctx: Context, caller: ApiUser, params: Params
) -> list[str]:
    """One row per lead (the lead id's, or up to 1000 whose phone_number is the number, newest
    first), each after the names line when `header=YES`; or LEAD NOT FOUND."""
    account_id, user = caller.account_id, caller.username
    lead_id, phone = params.get("lead_id"), params.get("phone_number")
    not_found = f"ERROR: lead_all_info LEAD NOT FOUND: {join(user, lead_id, phone)}"
    archived = _archived(params)
    if lead_id:
        number = _lead_id(lead_id)
        lead = None if number is None else await _lead(conn, account_id, number, archived)
        rows = [] if lead is None else [lead]
    elif MIN_PHONE <= len(phone) <= MAX_PHONE and "," not in phone:
        key = dedupe_key(phone, await default_region(conn, account_id))
        rows = await _by_phone(conn, account_id, [key], ALL_INFO_LIMIT, archived)
    else:
        rows = []
    if not rows:
        return [not_found]
    delimiter = DELIMITERS.get(_WORD.sub("", params.get("stage")), "|")
    lines = []
    for row in rows:
        # Vicidial prints the names before every lead, not once.
        if _header(params):
            lines.append(delimiter.join(COLUMNS))
        lines.append(delimiter.join(vicidial_row(row).values()))
    return lines


# --- lead_field_info -------------------------------------------------------------------------


async def lead_field_info(
    conn: Connection, _ctx: Context, caller: ApiUser, params: Params
) -> list[str]:
    """The value of one of lead_all_info's columns (`field_name`, any case) of one lead."""
    account_id, user = caller.account_id, caller.username
    lead_id = params.get("lead_id")
    field_name = _WORD.sub("", params.get("field_name"))
    column = field_name.lower()
    if not 1 <= len(lead_id) <= MAX_LEAD_ID_DIGITS or column not in COLUMNS:
        data = join(user, lead_id, field_name)
        return [f"ERROR: lead_field_info INVALID SEARCH PARAMETERS: {data}"]
    number = _lead_id(lead_id)
    lead = None if number is None else await _lead(conn, account_id, number, _archived(params))
    if lead is None:
        return [f"ERROR: lead_field_info LEAD NOT FOUND: {join(user, lead_id)}"]
    return [vicidial_row(lead)[column]]
