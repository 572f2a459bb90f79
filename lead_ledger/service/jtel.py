"""jtel ACD dialler contacts: the field mapping, and import/list/get/delete on the ledger.

A jtel contact is a lead. Its mapped fields (docs/jtel.md) are canonical LeadFields; every other
jtel field lives in `extra` under its jtel name. Every write goes through service.lead_inserts
or service.leads under the campaign lock: a contact is deduplicated, archived, audited as a lead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, Literal, NamedTuple

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import ANY_VERSION
from lead_ledger.ledger.events import ExtraValue, LeadFields, LeadRejected
from lead_ledger.ledger.lead import LeadError
from lead_ledger.ledger.locks import lock_campaigns
from lead_ledger.ledger.phones import dedupe_key, digits_only
from lead_ledger.projections.leads import LEAD_COLUMNS
from lead_ledger.service.dnc import BLOCKED_KEYS_OF_LEAD
from lead_ledger.service.errors import NotFound
from lead_ledger.service.inputs import signed_decimal
from lead_ledger.service.lead_inserts import insert_leads
from lead_ledger.service.leads import delete_leads, update_leads
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context, record, rejections_stream, stream_append

Kind = Literal["text", "phone", "int", "number", "datetime"]


class FieldSpec(NamedTuple):
    """One jtel contact field: its type, its length limit and the LeadFields name it maps to."""

    name: str
    kind: Kind
    max_length: int | None = None
    canonical: str | None = None  # None: kept in `extra` under the jtel name


PHONE_SLOTS: Final = 6
# The import fields in the vendor's order (seed 004), DiallerCampaignsID/Name aside.
IMPORT_FIELDS: Final[tuple[FieldSpec, ...]] = (
    FieldSpec("RandomSortOrder", "int"),
    FieldSpec("UserData", "text", 64, "user_data"),
    FieldSpec("Client", "text", 64),
    FieldSpec("Service", "text", 64),
    FieldSpec("ReferenceNumber", "text", 64, "reference_number"),
    FieldSpec("Name", "text", 64, "name"),
    FieldSpec("FirstName", "text", 64, "first_name"),
    FieldSpec("Salutation", "text", 16, "salutation"),
    FieldSpec("Title", "text", 16, "title"),
    FieldSpec("Company", "text", 64, "company"),
    FieldSpec("Address", "text", 256, "address1"),
    FieldSpec("PostalCode", "text", 10, "postal_code"),
    FieldSpec("City", "text", 64, "city"),
    FieldSpec("Country", "text", 64, "country"),
    FieldSpec("AccountOwner", "text", 64),
    FieldSpec("AccountBank", "text", 64),
    FieldSpec("AccountNationalBankCode", "text", 64),
    FieldSpec("AccountBIC", "text", 11),
    FieldSpec("AccountNumber", "text", 64),
    FieldSpec("AccountIBAN", "text", 34),
    FieldSpec("Amount", "number"),
    *(FieldSpec(f"PhoneNumber{n}", "phone", 32) for n in range(1, PHONE_SLOTS + 1)),
    FieldSpec("FaxNumber", "text", 32),
    FieldSpec("Email", "text", 256, "email"),
    FieldSpec("Website", "text", 256),
    FieldSpec("Comment", "text", 4000, "comments"),
    FieldSpec("ReservedUsersUID", "text", 64),
    FieldSpec("FollowUpUsersUID", "text", 64),
    FieldSpec("FollowUpDateTime", "datetime"),
    FieldSpec("dtBeginDate", "datetime"),
    FieldSpec("dtEndDate", "datetime"),
    FieldSpec("Manufacturer", "text", 64),
    FieldSpec("Model", "text", 64),
    FieldSpec("Tag", "text", 64),
    FieldSpec("ExternalSystemLink", "text", 1024),
)
CANONICAL: Final = {f.name: f.canonical for f in IMPORT_FIELDS if f.canonical}
EXTRA_NAMES: Final = tuple(f.name for f in IMPORT_FIELDS if not f.canonical and f.kind != "phone")
PHONE_NAMES: Final = tuple(f"PhoneNumber{n}" for n in range(1, PHONE_SLOTS + 1))
# Where the numbers sat when the slots were not 1..n ("3" or "2,5"): phone_numbers is compact,
# so the primary number is the first one given, and this key puts each back in its slot.
SLOTS_KEY: Final = "PhoneNumberSlots"

# Dialler run-time fields: the ledger dials nothing, so they keep their never-dialled values.
RUNTIME_FIELDS: Final[dict[str, object]] = {
    "dtNextTry": None,
    "LastAcdAgentEndReasonsID": None,
    "bLastResultMailbox": None,
    **{f"bPhoneNumber{n}Invalid": None for n in range(1, PHONE_SLOTS + 1)},
    **{f"nTriesPhoneNumber{n}": 0 for n in range(1, PHONE_SLOTS + 1)},
    **{f"PhoneNumber{n}LastAcdAgentEndReasonsID": None for n in range(1, PHONE_SLOTS + 1)},
    **{f"nPhoneNumber{n}LastCause": None for n in range(1, PHONE_SLOTS + 1)},
}

_COLUMNS: Final = ", ".join(LEAD_COLUMNS)
SELECT_CAMPAIGN_BY_ID: Final = """
SELECT campaign_id FROM campaigns WHERE account_id = $1 AND campaign_id = $2
"""
SELECT_CAMPAIGN_BY_NAME: Final = """
SELECT campaign_id FROM campaigns WHERE account_id = $1 AND name = $2
"""
SELECT_BY_USER_DATA: Final = """
SELECT lead_id FROM contacts
WHERE campaign_id = $1 AND kind = 'user_data' AND value = $2
ORDER BY lead_id LIMIT 1
"""
SELECT_FIRST_BY_USER_DATA: Final = """
SELECT c.lead_id FROM contacts c JOIN campaigns k USING (campaign_id)
WHERE k.account_id = $1 AND c.kind = 'user_data' AND c.value = $2
  AND c.lead_id <> ALL($3::bigint[])
ORDER BY c.lead_id LIMIT 1
"""
SELECT_EXTRA: Final = "SELECT extra FROM leads WHERE lead_id = $1"
# With each contact, what flags its blocked numbers (bPhoneNumberNInvalid): the account's
# region, to key each slot's number, and the row's keys the do-not-call registry blocks now.
_DNC_COLUMNS: Final = f"""
(SELECT s.default_region FROM settings s WHERE s.account_id = l.account_id) AS dnc_region,
{BLOCKED_KEYS_OF_LEAD} AS dnc_blocked"""
SELECT_CONTACT: Final = f"""
SELECT {_COLUMNS}, {_DNC_COLUMNS} FROM leads l WHERE account_id = $1 AND lead_id = $2
"""
COUNT_CONTACTS: Final = "SELECT count(*) FROM leads WHERE account_id = $1 AND campaign_id = $2"
# Contacts by UserData, through the contact index: the account's (in one campaign when $3 is
# given), ordered as the campaign list is.
_BY_USER_DATA: Final = """
FROM contacts c JOIN leads l USING (lead_id)
WHERE c.kind = 'user_data' AND c.value = $2 AND l.account_id = $1
  AND ($3::bigint IS NULL OR l.campaign_id = $3)"""
COUNT_BY_USER_DATA: Final = f"SELECT count(*) {_BY_USER_DATA}"
SELECT_BY_USER_DATA_PAGE: Final = f"""
SELECT {", ".join(f"l.{c}" for c in LEAD_COLUMNS)}, {_DNC_COLUMNS} {_BY_USER_DATA}
ORDER BY l.name NULLS LAST, l.lead_id
OFFSET $4 LIMIT $5
"""
# The account's campaigns in jtel's order (by Name).
SELECT_CAMPAIGNS: Final = """
SELECT campaign_id, name, direction, assignment, dial_mode, state
FROM campaigns WHERE account_id = $1 ORDER BY name, campaign_id
"""
# LIMIT NULL is LIMIT ALL: jtel's limitPageSize -1 (everything) is passed as NULL.
SELECT_CONTACTS: Final = f"""
SELECT {_COLUMNS}, {_DNC_COLUMNS} FROM leads l
WHERE account_id = $1 AND campaign_id = $2
ORDER BY name NULLS LAST, lead_id
OFFSET $3 LIMIT $4
"""


ALL_BLOCKED: Final = "All phone numbers of the contact are on a do-not-call list"


class ContactInput(msgspec.Struct, frozen=True, kw_only=True):
    """A validated import body: the campaign named, and each given field's value."""

    campaign_id: int | None = None
    campaign_name: str | None = None
    values: dict[str, ExtraValue] = {}


class ContactPage(NamedTuple):
    total: int  # every contact of the campaign
    rows: list[asyncpg.Record]  # the requested page


def campaign_not_found() -> NotFound:
    return NotFound("Dialler campaign not found")


# --- mapping --------------------------------------------------------------------------------------


def lead_fields(values: Mapping[str, ExtraValue]) -> LeadFields:
    """The canonical lead of a validated jtel contact; empty phone slots are left out."""
    phones: list[str] = []
    slots: list[int] = []
    for slot, name in enumerate(PHONE_NAMES, start=1):
        number = values.get(name)
        if isinstance(number, str) and number.strip():
            phones.append(number)
            slots.append(slot)
    canonical = {field: values.get(name) for name, field in CANONICAL.items()}
    extra = {name: values[name] for name in EXTRA_NAMES if values.get(name) is not None}
    if slots != list(range(1, len(slots) + 1)):
        extra[SLOTS_KEY] = ",".join(str(slot) for slot in slots)
    return msgspec.convert({**canonical, "phone_numbers": phones, "extra": extra}, LeadFields)


def overwrite_patch(new: LeadFields, current_extra: Mapping[str, object]) -> dict[str, object]:
    """The patch that makes a lead's jtel fields those of `new` (absent ones become null).

    `extra` is merged by decide_update, so only keys whose value differs are sent: a key set
    to None where it was missing would otherwise show as a change that changed nothing.
    """
    patch: dict[str, object] = {field: getattr(new, field) for field in CANONICAL.values()}
    patch["phone_numbers"] = new.phone_numbers
    extra = {
        name: new.extra.get(name)
        for name in (*EXTRA_NAMES, SLOTS_KEY)
        if new.extra.get(name) != current_extra.get(name)
    }
    if extra:
        patch["extra"] = extra
    return patch


def _slots(phones: Sequence[str], extra: Mapping[str, object]) -> list[int]:
    saved = extra.get(SLOTS_KEY)
    if isinstance(saved, str):
        parts = saved.split(",")
        if len(parts) == len(phones) and all(p.isdigit() for p in parts):
            slots = [int(p) for p in parts]
            # Another dialect may have rewritten the numbers: trust only a consistent map.
            if len(set(slots)) == len(slots) and all(1 <= s <= PHONE_SLOTS for s in slots):
                return slots
    return list(range(1, min(len(phones), PHONE_SLOTS) + 1))


def contact_record(row: asyncpg.Record) -> dict[str, object]:
    """A leads projection row as a jtel DiallerContacts record."""
    extra_raw = row["extra"]
    extra: dict[str, object] = (
        msgspec.json.decode(extra_raw) if isinstance(extra_raw, bytes | str) else dict(extra_raw)
    )
    phones: list[str] = list(row["phone_numbers"])
    by_slot = dict(zip(_slots(phones, extra), phones, strict=False))
    record: dict[str, object] = {"ID": row["lead_id"], "DiallerCampaignsID": row["campaign_id"]}
    blocked = set(row["dnc_blocked"] or ())
    for spec in IMPORT_FIELDS:
        if spec.kind == "phone":
            record[spec.name] = by_slot.get(int(spec.name.removeprefix("PhoneNumber")))
        elif spec.canonical:
            record[spec.name] = row[spec.canonical]
        else:
            record[spec.name] = as_jtel(spec, extra.get(spec.name))
    record.update(RUNTIME_FIELDS)
    # A number on the do-not-call list is never dialable: flagged invalid in its slot.
    for slot, number in by_slot.items():
        if blocked and dedupe_key(number, row["dnc_region"]) in blocked:
            record[f"bPhoneNumber{slot}Invalid"] = True
    record["dtImported"] = jtel_time(row["entry_at"])
    return record


INT32: Final = 2**31
JSON_NUMBER: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def as_jtel(spec: FieldSpec, value: object) -> object:
    """An `extra` value as the jtel field of its name reads it. jtel's import stored it so
    already; another dialect's upload may have kept a column of the same name as text
    ("Amount": "lots"): it reads as jtel's type when it is one (`"12.5"`, `"7"`, an ISO date),
    else null, so that a jtel client can parse the record and post it back. The lead keeps the
    value as sent (the native API shows it)."""
    if value is None or isinstance(value, bool):
        return None
    if spec.kind == "text":
        return value if isinstance(value, str) else str(value)
    text = str(value).strip()
    if spec.kind == "int":
        number = signed_decimal(text)  # ASCII digits: int() also reads "1_000" and "٣"
        return number if number is not None and -INT32 <= number < INT32 else None
    if spec.kind == "number":
        return float(text) if JSON_NUMBER.fullmatch(text) else None
    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        return None


def jtel_time(at: datetime) -> str:
    """jtel's timestamp text: ISO, seconds, no offset (UTC)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


# --- commands and reads ---------------------------------------------------------------------------


async def find_campaign(
    conn: Connection, account_id: int, campaign_id: int | None, campaign_name: str | None
) -> int:
    """The campaign of this account named by id (which wins) or by name; NotFound otherwise."""
    found: int | None
    if campaign_id is not None:
        found = await conn.fetchval(SELECT_CAMPAIGN_BY_ID, account_id, campaign_id)
    else:
        found = await conn.fetchval(SELECT_CAMPAIGN_BY_NAME, account_id, campaign_name)
    if found is None:
        raise campaign_not_found()
    return found


class Imported(NamedTuple):
    record: dict[str, object] | None  # the contact as stored, or None when refused
    rejected: str | None = None  # why the ledger refused it (recorded as LeadRejected)
    blocked: bool = False  # refused because every number is on the do-not-call list


async def import_contact(
    conn: Connection, ctx: Context, *, account_id: int, contact: ContactInput, overwrite: bool
) -> Imported:
    """Insert the contact, or with `overwrite` update the campaign's contact with its UserData.

    The lookup by UserData happens under the campaign lock, so two imports of one UserData
    never both insert. A contact the domain refuses (no dialable number) is recorded as
    LeadRejected on the request's stream. Raises NotFound for an unknown campaign.
    """
    campaign_id = await find_campaign(conn, account_id, contact.campaign_id, contact.campaign_name)
    digitless = _digitless_phone(contact.values)
    if digitless is not None:
        # Stored, it could be the primary number every dialect dials (`+` before a real one).
        reason = f"{digitless} holds no digit: it is no phone number"
        await _reject(conn, ctx, account_id, campaign_id, contact, reason, None)
        return Imported(record=None, rejected=reason)
    fields = lead_fields(contact.values)
    await lock_campaigns(conn, [campaign_id])
    lead_id: int | None = None
    if overwrite and fields.user_data:
        lead_id = await conn.fetchval(SELECT_BY_USER_DATA, campaign_id, fields.user_data)
    try:
        if lead_id is None:
            result = await insert_leads(
                conn,
                ctx,
                account_id=account_id,
                campaign_id=campaign_id,
                rows=[fields],
                check_duplicates=False,
                rejections_stream=rejections_stream(ctx, account_id),
                blocked_when_all=True,
            )
            if result.blocked:  # recorded as LeadRejected (reason dnc) on the request's stream
                return Imported(record=None, rejected=ALL_BLOCKED, blocked=True)
            lead_id = result.inserted[0]
        else:
            current = msgspec.json.decode(await conn.fetchval(SELECT_EXTRA, lead_id))
            patch = overwrite_patch(fields, current)
            updated = await update_leads(
                conn, ctx, account_id=account_id, patches={lead_id: patch}, dnc_when_all=True
            )
            if updated.blocked:  # every new number on the do-not-call list: left as it was
                return Imported(record=None, rejected=ALL_BLOCKED, blocked=True)
    except LeadError as error:
        # Decided before anything was written, so the transaction is clean for the refusal.
        await _reject(conn, ctx, account_id, campaign_id, contact, str(error), lead_id)
        return Imported(record=None, rejected=str(error))
    row = await conn.fetchrow(SELECT_CONTACT, account_id, lead_id)
    if row is None:  # written above in this transaction: only a bug gets here
        raise RuntimeError(f"contact {lead_id} vanished inside its own transaction")
    return Imported(record=contact_record(row))


def _digitless_phone(values: Mapping[str, ExtraValue]) -> str | None:
    """The first phone field given with no digit in it (`+`, `n/a`) beside one that has digits;
    blank ones are empty slots. (With no digits anywhere the ledger refuses the contact as a
    lead without a phone number.)"""
    given = [(n, v) for n in PHONE_NAMES if isinstance(v := values.get(n), str) and v.strip()]
    digitless = [n for n, v in given if not digits_only(v)]  # the digits dedupe keys read
    return digitless[0] if digitless and len(digitless) < len(given) else None


async def _reject(
    conn: Connection,
    ctx: Context,
    account_id: int,
    campaign_id: int,
    contact: ContactInput,
    reason: str,
    lead_id: int | None,
) -> None:
    refusal = LeadRejected(
        account_id=account_id,
        campaign_id=campaign_id,
        reason=reason,
        row={name: value for name, value in contact.values.items() if value is not None},
        existing_lead_ids=[] if lead_id is None else [lead_id],
    )
    stream = rejections_stream(ctx, account_id)
    await record(conn, [stream_append(ctx, stream, ANY_VERSION, [refusal], account_id=account_id)])


async def list_contacts(
    conn: Connection, account_id: int, campaign_id: int, *, start: int, size: int | None
) -> ContactPage:
    """One page of a campaign's contacts by Name, then ID; `size` None is everything."""
    await find_campaign(conn, account_id, campaign_id, None)
    # One snapshot for the count and the page, so they agree.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        count: int = await conn.fetchval(COUNT_CONTACTS, account_id, campaign_id)
        rows = await conn.fetch(SELECT_CONTACTS, account_id, campaign_id, start, size)
    return ContactPage(total=count, rows=rows)


async def contacts_by_user_data(
    conn: Connection,
    account_id: int,
    user_data: str,
    campaign_id: int | None,
    *,
    start: int,
    size: int | None,
) -> ContactPage:
    """One page of the account's contacts with this UserData (in one campaign when given)."""
    if campaign_id is not None:
        await find_campaign(conn, account_id, campaign_id, None)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        count: int = await conn.fetchval(COUNT_BY_USER_DATA, account_id, user_data, campaign_id)
        rows = await conn.fetch(
            SELECT_BY_USER_DATA_PAGE, account_id, user_data, campaign_id, start, size
        )
    return ContactPage(total=count, rows=rows)


# jtel's campaign fields lead-ledger has no value for: present, as null, so that a client
# reading jtel's records finds every name it expects.
JTEL_ONLY_CAMPAIGN_FIELDS: Final = (
    "ContactPreviewTime",
    "nMaxParallelLines",
    "dtFrom",
    "dtTo",
    "LanguagesID",
    "bCallerIDActive",
)


def campaign_record(row: asyncpg.Record, account_id: int) -> dict[str, object]:
    """A campaign as jtel shows it: its ID, Name and ClientsID, its settings under jtel-style
    names, and jtel's other fields as null."""
    return {
        "ID": row["campaign_id"],
        "Name": row["name"],
        "ClientsID": account_id,
        "bActive": row["state"] == "running",
        "DialMode": row["dial_mode"],
        "Direction": row["direction"],
        "Assignment": row["assignment"],
        **dict.fromkeys(JTEL_ONLY_CAMPAIGN_FIELDS),
    }


async def list_campaigns(conn: Connection, account_id: int) -> list[dict[str, object]]:
    return [campaign_record(r, account_id) for r in await conn.fetch(SELECT_CAMPAIGNS, account_id)]


async def get_contact(conn: Connection, account_id: int, lead_id: int) -> dict[str, object] | None:
    row = await conn.fetchrow(SELECT_CONTACT, account_id, lead_id)
    return None if row is None else contact_record(row)


async def delete_contact(conn: Connection, ctx: Context, *, account_id: int, lead_id: int) -> bool:
    """Delete a live contact of this account (LeadDeleted, reason api); False when none."""
    return bool(await delete_leads(conn, ctx, account_id=account_id, lead_ids=[lead_id]))


async def delete_contact_by_user_data(
    conn: Connection, ctx: Context, *, account_id: int, user_data: str
) -> int | None:
    """Delete the account's first contact (lowest ID) with this UserData; its ID, or None.

    The candidate is read before its campaign is locked; if another writer deleted it in
    between, the next candidate is taken, so the call deletes one contact whenever one exists.
    Each candidate is tried in a transaction of its own: the next one's campaign may have a
    lower id, and taking its lock while holding the last one's would break the ascending order
    that keeps multi-campaign writers (an account-wide do-not-call entry) from deadlocking.
    """
    tried: list[int] = []
    while True:
        lead_id: int | None = await conn.fetchval(
            SELECT_FIRST_BY_USER_DATA, account_id, user_data, tried
        )
        if lead_id is None:
            return None
        async with write_transaction(conn):
            deleted = await delete_contact(conn, ctx, account_id=account_id, lead_id=lead_id)
        if deleted:
            return lead_id
        tried.append(lead_id)
