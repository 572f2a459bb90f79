"""Vicidial's lead fields and the canonical lead (docs/vicidial.md, "Field mapping"):
phone_number and alt_phone are the lead's first and second numbers, vendor_lead_code its
user_data (the key a jtel UserData is too), rank its priority, the columns the canonical lead
names by another name mapped to them, and the rest kept in `extra` under the Vicidial name.
Values are cut to vicidial_list's column widths, as MySQL would store them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import msgspec

from lead_ledger.ledger.events import ExtraValue, LeadFields
from lead_ledger.service.inputs import signed_decimal
from lead_ledger.service.vicidial_params import Params

# update_lead's value that empties a field.
BLANK: Final = "--BLANK--"
MAX_RANK_DIGITS: Final = 5  # vicidial_list.rank is a smallint

# Column widths of vicidial_list: MySQL keeps what fits, and so does this.
WIDTHS: Final = {
    "vendor_lead_code": 20,
    "source_id": 50,
    "title": 4,
    "first_name": 30,
    "middle_initial": 1,
    "last_name": 30,
    "address1": 100,
    "address2": 100,
    "address3": 100,
    "city": 50,
    "state": 2,
    "province": 50,
    "postal_code": 10,
    "country_code": 3,
    "alt_phone": 12,
    "email": 70,
    "security_phrase": 100,
    "comments": 255,
    "owner": 20,
    "phone_code": 10,
    "status": 6,
}
# Canonical fields by Vicidial name (docs/vicidial.md has the table); the rest go to `extra`.
CANONICAL: Final = {
    "vendor_lead_code": "user_data",
    "title": "title",
    "first_name": "first_name",
    "middle_initial": "middle_initial",
    "last_name": "last_name",
    "address1": "address1",
    "address2": "address2",
    "address3": "address3",
    "city": "city",
    "state": "state",
    "postal_code": "postal_code",
    "country_code": "country",
    "email": "email",
    "comments": "comments",
}
EXTRA: Final = (
    "province",
    "gender",
    "date_of_birth",
    "security_phrase",
    "source_id",
    "owner",
    "phone_code",
)

FIELDS: Final = (*CANONICAL, *EXTRA, "alt_phone", "rank")
# What update_lead and batch_update_lead set beyond add_lead's fields (Vicidial L17207-L17238):
# the lead's status, and call columns that lead_all_info prints from `extra`. add_lead takes
# none of them (its lead is NEW); update_lead's insert takes the status.
CALL_COLUMNS: Final = ("called_count", "gmt_offset_now", "entry_list_id")
UPDATED: Final = (*FIELDS, "status", *CALL_COLUMNS)
# The canonical lead's default status, which Vicidial spells NEW.
NEW_STATUS: Final = "new"
VICIDIAL_NEW: Final = "NEW"


def given_values(params: Params, names: Sequence[str] = FIELDS) -> dict[str, str]:
    """The lead fields a call gives (not empty), cut to their widths: add_lead's, or with
    `UPDATED` update_lead's."""
    values = {}
    for name in names:
        value = params.get(name)
        if value:
            values[name] = value if value == BLANK else value[: WIDTHS.get(name, len(value))]
    return values


def _priority(rank: str) -> int | None:
    value = signed_decimal(rank)  # ASCII digits only: '²' is a digit to str.isdigit()
    return value if value is not None and len(rank.removeprefix("-")) <= MAX_RANK_DIGITS else None


def lead_fields(phone: str, values: Mapping[str, str], gmt_offset: str) -> LeadFields:
    """A new lead: phone and the alt phone its numbers, rank its priority."""
    phones = [phone, *([values["alt_phone"]] if values.get("alt_phone") else [])]
    canonical = {field: values[name] for name, field in CANONICAL.items() if name in values}
    extra: dict[str, ExtraValue] = {name: values[name] for name in EXTRA if name in values}
    extra["gmt_offset_now"] = gmt_offset
    priority = _priority(values.get("rank", ""))
    ranked = {} if priority is None else {"priority": priority}
    status = canonical_status(values.get("status", VICIDIAL_NEW))
    return msgspec.convert(
        {**canonical, **ranked, "status": status, "phone_numbers": phones, "extra": extra},
        LeadFields,
    )


def canonical_status(status: str) -> str:
    """A Vicidial status as the canonical lead holds it: NEW is the default `new` (read back
    as NEW), `--BLANK--` empties it, any other is kept as given."""
    if status == BLANK:
        return ""
    return NEW_STATUS if status == VICIDIAL_NEW else status


def lead_patch(
    values: Mapping[str, str], phones: Sequence[str], new_phone: str | None = None
) -> dict[str, object]:
    """What an update changes, as a patch of LeadFields names: each given field (`--BLANK--`
    empties it), the alt phone as the second number, `new_phone` as the first when the call
    may change it (`update_phone_number=Y`). `phones` are the lead's numbers now."""
    patch: dict[str, object] = {}
    for name, field in CANONICAL.items():
        if name in values:
            patch[field] = None if values[name] == BLANK else values[name]
    if "status" in values:
        patch["status"] = canonical_status(values["status"])
    extra = {
        name: None if values[name] == BLANK else values[name]
        for name in (*EXTRA, *CALL_COLUMNS)
        if name in values
    }
    if extra:
        patch["extra"] = extra
    priority = _priority(values.get("rank", ""))
    if priority is not None:
        patch["priority"] = priority
    numbers = list(phones)
    if new_phone:
        numbers[:1] = [new_phone]
    alt = values.get("alt_phone")
    if alt == BLANK:
        del numbers[1:2]
    elif alt:
        numbers[1:2] = [alt]
    if numbers != list(phones):
        patch["phone_numbers"] = numbers
    return patch
