"""Ozonetel CloudAgent bulk JSON V4 (VENDOR-APIS.md section G): check a request, queue a job.

`POST /cloudAgentRestAPI/index.php/AddCampaignBulkDataV4/addBulkData/format/json` takes up to
500 rows as `bulkData: {"map": [column names], "data": [[cells], ...]}` and answers at once with
a transactionId; the rows are added by a job of kind `ozonetel_bulk_v4`
(service/ozonetel_v4_job.py), which checks each row, inserts the good ones, and POSTs the
vendor's result to callBackUrl. The request's own checks run here in a fixed order
(docs/ozonetel.md, "Bulk JSON V4"); the vendor's table of answers is cut off after its first
two, so the rest follow its style and are documented there.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.credentials import key_digest
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import RateLimits
from lead_ledger.service import jobs, rate_limits
from lead_ledger.service.inputs import decode_json
from lead_ledger.service.ozonetel import office_timezone
from lead_ledger.service.ozonetel_bulk import parse_action
from lead_ledger.service.ozonetel_file import NO_AGENT_COLUMN, NO_PHONE_COLUMN, NO_SKILL_COLUMN
from lead_ledger.service.ozonetel_values import (
    Scalar,
    given,
    key_matches,
    lookup,
    names_account,
    stored,
    wants_duplicate_check,
)
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Origin

KIND: Final = "ozonetel_bulk_v4"
BUCKET: Final = "ozonetel_bulk_v4"
DIALECT: Final = "ozonetel"
MAX_ROWS: Final = 500
MAX_ROW_CHARACTERS: Final = 2_000
# The vendor's callback writes its times so; they are the account's wall clock (its office
# hours' time zone, UTC without).
TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"

# Everything the checks need, in one round trip. Only outbound campaigns take data, so an
# inbound one is as invalid as a missing one (as for the file upload).
SELECT_V4_CONTEXT: Final = """
SELECT c.account_id, c.credential_id, c.key_sha256, a.name AS account_name, s.rate_limits,
       s.office_hours, k.campaign_id, k.name AS campaign_name, k.assignment
FROM credentials c
JOIN accounts a ON a.account_id = c.account_id
JOIN settings s ON s.account_id = c.account_id
LEFT JOIN campaigns k ON k.account_id = c.account_id AND k.name = $2 AND k.direction = 'outbound'
WHERE c.key_sha256 = $1 AND c.dialect = 'ozonetel' AND NOT c.revoked
"""

# How the job treats numbers already present: not at all, live leads of the campaign
# (checkDuplicate), or any lead of it, archived included (isDelete).
Duplicates = Literal["none", "live", "any"]

# A map column's role, by its name lower-cased without "_" and spaces (PhoneNumber ==
# phone_number), as in the file upload; any other named column is a lead field of its own.
Role = Literal["phone", "name", "priority", "expiry", "agent", "skill"]
ROLES: Final[dict[str, Role]] = {
    "phonenumber": "phone",
    "name": "name",
    "priority": "priority",
    "expirydate": "expiry",
    "agentid": "agent",
    "skill": "skill",
}


class Refusal(enum.Enum):
    """The request's checks, in order (docs/ozonetel.md, "Bulk JSON V4")."""

    NO_API_KEY = enum.auto()
    NO_USERNAME = enum.auto()
    INVALID_USER = enum.auto()  # an unknown key, or a userName that is not the key's account
    NO_CAMPAIGN = enum.auto()
    UNKNOWN_CAMPAIGN = enum.auto()
    NO_BULK_DATA = enum.auto()
    NO_PHONE_COLUMN = enum.auto()
    NO_AGENT_COLUMN = enum.auto()  # an agentwise campaign's map has no AgentId
    NO_SKILL_COLUMN = enum.auto()  # a skillwise campaign's map has no skill
    DATA_LIMIT = enum.auto()  # over 500 rows, or a row over 2,000 characters
    RATE_LIMITED = enum.auto()


# The vendor's text for each refusal, all {"status": "error"} (the rate limit with 429).
MESSAGES: Final[dict[Refusal, str]] = {
    Refusal.NO_API_KEY: "apiKey should not be empty",
    Refusal.NO_USERNAME: "userName should not be empty",
    Refusal.INVALID_USER: "Invalid userName or apiKey",
    Refusal.NO_CAMPAIGN: "campaignName should not be empty",
    Refusal.UNKNOWN_CAMPAIGN: "Invalid campaignName",
    Refusal.NO_BULK_DATA: "bulkData should not be empty",
    Refusal.NO_PHONE_COLUMN: NO_PHONE_COLUMN,
    Refusal.NO_AGENT_COLUMN: NO_AGENT_COLUMN,
    Refusal.NO_SKILL_COLUMN: NO_SKILL_COLUMN,
    Refusal.DATA_LIMIT: "Data limit exceeded",
    Refusal.RATE_LIMITED: "Request limit exhausted",
}


class Queued(msgspec.Struct, frozen=True):
    """Accepted: the job that adds the rows, and the transactionId the caller follows it by."""

    transaction_id: str
    job_id: int


Outcome = Refusal | Queued


class BulkRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The request's fields as text (None when missing, null or not a scalar); `bulk_data` as
    decoded, checked by `bulk_rows`."""

    api_key: str | None = None
    user_name: str | None = None
    campaign_name: str | None = None
    bulk_data: Any = None
    action: str | None = None
    check_duplicate: Scalar = None
    is_delete: Scalar = None
    callback_url: str | None = None


class BulkPayload(msgspec.Struct, frozen=True, kw_only=True):
    """The job's payload: the map's column names and the rows' cells, as text. A row that is
    not an array is kept as its JSON text (the job refuses it)."""

    columns: list[str]
    rows: list[list[str] | str]


def _scalar_text(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def read_request(fields: Mapping[str, Any], header_api_key: str | None) -> BulkRequest:
    """The request from its decoded body; apiKey from the body, else from its header."""

    def text(name: str) -> str | None:
        return _scalar_text(fields.get(name))

    check, delete = fields.get("checkDuplicate"), fields.get("isDelete")
    return BulkRequest(
        api_key=given(text("apiKey")) or given(header_api_key),
        user_name=text("userName"),
        campaign_name=text("campaignName"),
        bulk_data=fields.get("bulkData"),
        action=text("action"),
        check_duplicate=check if isinstance(check, str | bool) else None,
        is_delete=delete if isinstance(delete, str | bool) else None,
        callback_url=text("callBackUrl"),
    )


def cell_text(value: object) -> str:
    """A cell as the text the job reads: numbers as written (9876543210.0 -> 9876543210),
    null as blank, an array or object as its JSON."""
    if value is None:
        return ""
    text = _scalar_text(value)
    return text if text is not None else msgspec.json.encode(value).decode()


def bulk_rows(bulk_data: object) -> BulkPayload | None:
    """`bulkData` (an object, or a JSON text of one) as columns and rows; None when it is
    missing, is not `{"map": [...], "data": [...]}`, or either list is empty."""
    if isinstance(bulk_data, str):
        try:
            bulk_data = decode_json(bulk_data.encode())
        except msgspec.DecodeError:
            return None
    if not isinstance(bulk_data, dict):
        return None
    columns, data = bulk_data.get("map"), bulk_data.get("data")
    if not isinstance(columns, list) or not isinstance(data, list) or not columns or not data:
        return None
    rows: list[list[str] | str] = [
        [cell_text(cell) for cell in row] if isinstance(row, list) else cell_text(row)
        for row in data
    ]
    return BulkPayload(columns=[cell_text(title) for title in columns], rows=rows)


def column_roles(columns: Sequence[str]) -> dict[Role, int]:
    """Where each role's column is in the map (the first of repeated ones)."""
    found: dict[Role, int] = {}
    for index, title in enumerate(columns):
        role = ROLES.get(title.strip().lower().replace("_", "").replace(" ", ""))
        if role is not None:
            found.setdefault(role, index)
    return found


def _too_large(payload: BulkPayload) -> bool:
    # "2,000 characters per row": the cells' text joined, as the vendor counts a row's data.
    return len(payload.rows) > MAX_ROWS or any(
        sum(map(len, row)) > MAX_ROW_CHARACTERS
        if isinstance(row, list)
        else len(row) > MAX_ROW_CHARACTERS
        for row in payload.rows
    )


def duplicates_mode(request: BulkRequest) -> Duplicates:
    """isDelete wins over checkDuplicate when both are given (the vendor's rule)."""
    if wants_duplicate_check(request.is_delete):
        return "any"
    return "live" if wants_duplicate_check(request.check_duplicate) else "none"


def transaction_id(now: datetime) -> str:
    """24 digits, as the vendor's: the Unix time in seconds, then 14 random digits, so that
    ids sort by submission and cannot be guessed."""
    return f"{int(now.timestamp()):010d}{secrets.randbelow(10**14):014d}"


def wall_clock(moment: datetime, timezone: str | None) -> str:
    """`moment` as the callback's yyyy-MM-dd HH:mm:ss in `timezone` (UTC without)."""
    zone = ZoneInfo(timezone) if timezone else UTC
    return moment.astimezone(zone).strftime(TIME_FORMAT)


class _Checked(msgspec.Struct, frozen=True, kw_only=True):
    row: asyncpg.Record
    payload: BulkPayload


async def add_bulk_data(
    conn: Connection,
    request: BulkRequest,
    *,
    now: datetime,
    origin: Origin,
    links_base: str,
) -> Outcome:
    """Run the checks in order, take the rate limit, queue the job.

    `links_base` is where clients reach this service: the job's failedFilePath starts with it.
    """
    checked = await _check(conn, request)
    if isinstance(checked, Refusal):
        return checked
    row = checked.row
    limits = msgspec.json.decode(row["rate_limits"], type=RateLimits)
    # Last, so that a refused request does not use up the account's minute (outside the
    # transaction, as rate_limits.take requires).
    if not await rate_limits.take(
        conn, row["account_id"], BUCKET, limits.ozonetel_bulk_v4_per_minute
    ):
        return Refusal.RATE_LIMITED
    actor = Actor(dialect=DIALECT, account_id=row["account_id"], credential_id=row["credential_id"])
    reference = transaction_id(now)
    timezone = office_timezone(row["office_hours"])
    async with write_transaction(conn):
        job_id = await jobs.submit_job(
            conn,
            origin.context(actor),
            account_id=row["account_id"],
            dialect=DIALECT,
            kind=KIND,
            campaign_id=row["campaign_id"],
            payload=msgspec.json.encode(checked.payload),
            received=len(checked.payload.rows),
            callback_url=stored(given(request.callback_url)),
            upload_ref=reference,
            # What the job does and what its callback says, kept on JobSubmitted, where a
            # failed job's callback finds them too.
            options={
                "transaction_id": reference,
                "campaign": row["campaign_name"],
                "username": request.user_name,
                "action": parse_action(request.action),
                "duplicates": duplicates_mode(request),
                "timezone": timezone,
                "started": wall_clock(now, timezone),
                "links_base": links_base,
            },
        )
    return Queued(reference, job_id)


async def _check(conn: Connection, request: BulkRequest) -> _Checked | Refusal:
    if request.api_key is None:
        return Refusal.NO_API_KEY
    username = given(request.user_name)
    if username is None:
        return Refusal.NO_USERNAME
    digest = key_digest(request.api_key)
    row = await conn.fetchrow(SELECT_V4_CONTEXT, digest, lookup(given(request.campaign_name)))
    if not key_matches(row, digest) or not names_account(username, row):
        return Refusal.INVALID_USER
    if given(request.campaign_name) is None:
        return Refusal.NO_CAMPAIGN
    if row["campaign_id"] is None:
        return Refusal.UNKNOWN_CAMPAIGN
    payload = _check_payload(request.bulk_data, row["assignment"])
    return payload if isinstance(payload, Refusal) else _Checked(row=row, payload=payload)


def _check_payload(bulk_data: object, assignment: str) -> BulkPayload | Refusal:
    """bulkData present, its map has the columns the campaign needs, within the limits."""
    payload = bulk_rows(bulk_data)
    if payload is None:
        return Refusal.NO_BULK_DATA
    roles = column_roles(payload.columns)
    if "phone" not in roles:
        return Refusal.NO_PHONE_COLUMN
    if assignment == "agentwise" and "agent" not in roles:
        return Refusal.NO_AGENT_COLUMN
    if assignment == "skillwise" and "skill" not in roles:
        return Refusal.NO_SKILL_COLUMN
    if _too_large(payload):
        return Refusal.DATA_LIMIT
    return payload
