"""Flexydial's bulk_data payload: the request-level checks and the per-row mapping to a lead.

Pure code, no I/O. `parse_bulk` returns the request or the vendor's exact error text (seed 000,
VENDOR-APIS A), which the HTTP layer sends as {"errors": <text>}; it is `parse_structure` (checks
that need nothing but the body) followed by `check_headers` (which needs the campaign's declared
CRM fields), so a caller can look the campaign up in between. `row_to_fields` maps one insert
row to the canonical lead, `row_to_patch` one update row to its changes, each or the row checks
it fails (`describe` writes them as Flexydial's "improper_data" description); `merge_patches`
applies an update's rows that found one lead to it. docs/bulk-validation.md lists the rules,
their order and every decision.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Final, Literal

import msgspec

from lead_ledger.ledger.events import LeadFields
from lead_ledger.service.inputs import NUL, decode_json

Kind = Literal["insert", "update"]

OOPS: Final = "Oops Something went wrong, Please contact Administrator"
INVALID_STRUCTURE: Final = "Invalid request structure"
NO_REFERENCE_FIELD: Final = "reference_field is missing in the request!"
NOT_UNIFORM: Final = "All items in bulk_data must have uniform structure"
NOTHING_TO_UPDATE: Final = (
    "Please provide the columns data that you want to update along with the reference_field"
)
HEADERS_MISMATCH: Final = (
    "Headers are not matching with Campaign CRM Fields. Please refer to the sample CSV"
)

ENTER_NUMBER: Final = "Enter Number"
INVALID_NUMBER: Final = "Enter Valid Number"
TOO_MANY_ALTERNATES: Final = "More than 5 alternate numbers are not allowed"
INVALID_PRIORITY: Final = "Enter Valid priority"
INVALID_EMAIL: Final = "Enter Valid Email Address"

# The keys of a row's description, in the order Flexydial's checks fill them (crm/utility.py of
# its Django code: `data_dict`, dumped as JSON into the row's `description`).
DUPLICATE_CHECK: Final = "duplicate_check"
NUMBER: Final = "number"
PRIORITY: Final = "priority"
ALTERNATES: Final = "alt_numeric"
EMAIL: Final = "email"
USER: Final = "user"

MAX_ALTERNATES: Final = 5
MAX_PRIORITY: Final = 99

# Flexydial's own contact columns; anything else must be a "section:field" CRM key.
CONTACT_KEYS: Final = frozenset(
    {"numeric", "alt_numeric", "first_name", "last_name", "email", "priority", "user"}
)

# Same number rule as Ozonetel's AddCampaignData: 3 to 16 digits after an optional "+".
_NUMBER: Final = re.compile(r"\+?[0-9]{3,16}")
_PRIORITY: Final = re.compile(r"[0-9]{1,9}")
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
# PostgreSQL's jsonb (event bodies) cannot hold NUL: a key with one is no header we can store.
_CRM_KEY: Final = re.compile(r"[^:\s\x00][^:\x00]*:[^:\x00]*[^:\s\x00]")


def not_blank(field: str) -> str:
    return f"the {field_label(field)} should not be blank"


def not_found(field: str) -> str:
    return f"the {field_label(field)} is not exist in campaign, please insert first"


def reference_missing(field: str) -> str:
    return f"reference_field - {field} is missing in some bulk_data item(s)"


class BulkRequest(msgspec.Struct, frozen=True, kw_only=True):
    """An accepted request: every value already text ("" for null), keys as sent."""

    campaign: str
    kind: Kind
    reference_field: str | None
    rows: list[dict[str, str]]


class RowProblem(msgspec.Struct, frozen=True):
    """Why one row is improper: each failed check's text by its key, in Flexydial's order."""

    problems: dict[str, str]


def describe(problems: Mapping[str, str]) -> str:
    """A refused row's `description` as Flexydial writes it: its checks' texts as a JSON object
    (Python's json.dumps, which Flexydial's code calls: `", "` and `": "` between items, non-ASCII
    escaped), so a client that parses it finds every failed check by its key."""
    return json.dumps(dict(problems))


def field_label(field: str) -> str:
    """How Flexydial names a reference field in its texts: `numeric` as is, a CRM field by its
    field name with spaces for underscores (`customer_info:customer_id` is `customer id`)."""
    if field == "numeric":
        return field
    return " ".join(field.split(":", 1)[1].split("_"))


_decode: Final = msgspec.json.Decoder().decode


def parse_bulk(body: bytes, *, crm_fields: list[str] | None) -> BulkRequest | str:
    """The request-level checks in order; the first failure's text, else the request."""
    request = parse_structure(body)
    if isinstance(request, str):
        return request
    return check_headers(request.rows, crm_fields) or request


def parse_structure(body: bytes) -> BulkRequest | str:  # noqa: PLR0911
    """Checks 1-9 (all but the headers); the first failure's text, else the request."""
    try:
        payload: object = decode_json(body, _decode)
    except msgspec.DecodeError:
        return OOPS  # Flexydial's catch-all answers what its view cannot read
    if not isinstance(payload, dict):
        return OOPS
    action = payload.get("action_type")
    if action not in (None, "insert", "update"):
        return INVALID_STRUCTURE
    kind: Kind = "update" if action == "update" else "insert"
    campaign = _campaign(payload.get("campaign"))
    items = _items(payload.get("bulk_data"))
    reference = payload.get("reference_field")
    if kind == "insert":
        # Seed 000 answers a reference_field on insert with the structure error (not A3's text).
        if "reference_field" in payload or campaign is None or items is None:
            return INVALID_STRUCTURE
        reference = None
    else:
        # Seed 000 type 1: the update path's missing campaign/bulk_data is the catch-all.
        if campaign is None or items is None:
            return OOPS
        if not isinstance(reference, str) or not reference.strip():
            return NO_REFERENCE_FIELD
        if reference != "numeric" and not _CRM_KEY.fullmatch(reference):
            # Leads are found by their number or a CRM field; no other column is indexed.
            return INVALID_STRUCTURE
        problem = _update_problem(items, reference)
        if problem is not None:
            return problem
    return BulkRequest(campaign=campaign, kind=kind, reference_field=reference, rows=items)


def check_headers(rows: list[dict[str, str]], crm_fields: list[str] | None) -> str | None:
    """Check 10: every key is a contact column or a CRM key (one the campaign declares, when it
    does); the mismatch text, else None."""
    return None if _headers_match(rows, crm_fields) else HEADERS_MISMATCH


def _campaign(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _items(value: object) -> list[dict[str, str]] | None:
    """bulk_data as rows of text, or None when it is missing, empty or not a list of objects."""
    if not isinstance(value, list) or not value:
        return None
    rows: list[dict[str, str]] = []
    for item in value:
        row = _texts(item) if isinstance(item, dict) else None
        if row is None:
            return None
        rows.append(row)
    return rows


def _update_problem(items: list[dict[str, str]], reference: str) -> str | None:
    """Seed 000 types 3-5, in the seed's order: reference present, uniform keys, something else."""
    if any(reference not in item for item in items):
        return reference_missing(reference)
    first = items[0].keys()
    if any(item.keys() != first for item in items):
        return NOT_UNIFORM
    if set(first) == {reference}:
        return NOTHING_TO_UPDATE
    return None


def _headers_match(items: list[dict[str, str]], crm_fields: list[str] | None) -> bool:
    """Every key is a contact column or a CRM key (one the campaign declares, when it does)."""
    declared = None if crm_fields is None else set(crm_fields)
    keys: set[str] = set()
    for item in items:
        keys.update(item)
    for key in keys - CONTACT_KEYS:
        if not _CRM_KEY.fullmatch(key):
            return False
        if declared is not None and key not in declared:
            return False
    return True


def _texts(item: Mapping[str, object]) -> dict[str, str] | None:
    """Values as text, as they would arrive in Flexydial's CSV; None when one cannot be."""
    out: dict[str, str] = {}
    for key, value in item.items():
        text = _text(value)
        if text is None:
            return None
        out[key] = text
    return out


def _text(value: object) -> str | None:  # noqa: PLR0911 - one branch per JSON type
    if value is None:
        return ""
    if isinstance(value, str):
        # Stored in jsonb event bodies, which cannot hold NUL: the text loses it, not the row.
        return value.replace(NUL, "") if NUL in value else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, list):
        # alt_numeric may be sent as a list; it travels as Flexydial's comma-separated text.
        texts: list[str] = []
        for part in value:
            text = None if isinstance(part, list | dict) else _text(part)
            if text is None:
                return None
            if text:
                texts.append(text)
        return ",".join(texts)
    return None  # nested objects have no column to go to


def alternates(text: str) -> list[str]:
    """alt_numeric's numbers: comma-separated, blanks dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def row_to_fields(row: Mapping[str, str]) -> LeadFields | RowProblem:
    """One insert row as a lead, or every one of Flexydial's row checks it fails."""
    numeric = row.get("numeric", "").strip()
    alt = alternates(row.get("alt_numeric", ""))
    priority = row.get("priority", "").strip()
    email = row.get("email", "").strip()
    problems = _value_problems(numeric, alt, priority, email, number_required=True)
    if problems:
        return RowProblem(problems)
    crm = {key: value for key, value in row.items() if key not in CONTACT_KEYS}
    return LeadFields(
        phone_numbers=[numeric, *alt],
        first_name=_given(row.get("first_name")),
        last_name=_given(row.get("last_name")),
        email=email or None,
        priority=int(priority) if priority else 1,
        agent=_given(row.get("user")),
        crm=crm,
    )


def _value_problems(
    numeric: str, alt: list[str], priority: str, email: str, *, number_required: bool
) -> dict[str, str]:
    """The checks inserts and updates share, each by its key, in the order Flexydial's code
    fills them (an insert's missing number after the priority); blank values are not checked.
    """
    problems = {}
    if numeric and not _NUMBER.fullmatch(numeric):
        problems[NUMBER] = INVALID_NUMBER
    if priority and not (_PRIORITY.fullmatch(priority) and int(priority) <= MAX_PRIORITY):
        problems[PRIORITY] = INVALID_PRIORITY
    if number_required and not numeric:
        problems[NUMBER] = ENTER_NUMBER
    if len(alt) > MAX_ALTERNATES:
        problems[ALTERNATES] = TOO_MANY_ALTERNATES
    elif not all(_NUMBER.fullmatch(number) for number in alt):
        problems[ALTERNATES] = INVALID_NUMBER
    if email and not _EMAIL.fullmatch(email):
        problems[EMAIL] = INVALID_EMAIL
    return problems


def _given(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


# --- updates ----------------------------------------------------------------------------------


class RowPatch(msgspec.Struct, frozen=True, kw_only=True):
    """What one update row changes on every lead it finds; a blank cell changes nothing."""

    numeric: str | None = None  # the new primary number (only when numeric is not the reference)
    alternates: list[str] | None = None  # the new numbers after the primary
    fields: dict[str, str | int] = {}  # first_name, last_name, email, priority
    crm: dict[str, str] = {}  # merged into the lead's CRM fields
    agent: str | None = None  # `user`: a reassignment


def row_to_patch(row: Mapping[str, str], reference: str) -> RowPatch | RowProblem:
    """One update row's changes, or every row check it fails (as for inserts; a blank
    reference value first, "the <field> should not be blank").

    The reference column finds the leads and is not itself changed.
    """
    numeric = "" if reference == "numeric" else row.get("numeric", "").strip()
    alt = alternates(row.get("alt_numeric", ""))
    priority = row.get("priority", "").strip()
    email = row.get("email", "").strip()
    problems = {}
    if not row.get(reference, "").strip():
        problems[DUPLICATE_CHECK] = not_blank(reference)
    problems |= _value_problems(numeric, alt, priority, email, number_required=False)
    if problems:
        return RowProblem(problems)
    fields: dict[str, str | int] = {}
    for name in ("first_name", "last_name"):
        text = _given(row.get(name))
        if text is not None:
            fields[name] = text
    if email:
        fields["email"] = email
    if priority:
        fields["priority"] = int(priority)
    crm = {
        key: value
        for key, value in row.items()
        if key not in CONTACT_KEYS and key != reference and value.strip()
    }
    return RowPatch(
        numeric=numeric or None,
        alternates=alt or None,
        fields=fields,
        crm=crm,
        agent=_given(row.get("user")),
    )


def merge_patches(current: LeadFields, patches: Sequence[RowPatch]) -> dict[str, object]:
    """The update of one lead (LeadFields names, for `decide_update`) that the rows finding it
    make, applied in row order: a later row wins a field, CRM fields merge."""
    phones = list(current.phone_numbers)
    out: dict[str, object] = {}
    crm: dict[str, str] = {}
    for patch in patches:
        if patch.numeric is not None:
            phones = [patch.numeric, *phones[1:]]
        if patch.alternates is not None:
            phones = [*phones[:1], *patch.alternates]
        out.update(patch.fields)
        crm.update(patch.crm)
        if patch.agent is not None:
            out["agent"] = patch.agent
    if phones != current.phone_numbers:
        out["phone_numbers"] = phones
    if crm:
        out["crm"] = crm
    return out
