"""The jtel ACD dialler contacts API on the wire: its error body, the import body's field-by-field
validation (each 400 names the field), and its records' shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, assert_never

import msgspec
from aiohttp import web
from multidict import MultiMapping

from lead_ledger.api.edge import Refused, json_response
from lead_ledger.api.openapi import Response
from lead_ledger.ledger.events import ExtraValue
from lead_ledger.service import jtel
from lead_ledger.service.inputs import (
    BIGINT_MAX,
    NUL,
    NUL_REASON,
    decimal,
    decode_json,
    nul_name,
    signed_decimal,
)


def error(status: int, reason: str) -> web.Response:
    """jtel's error body, `{"status": <code>, "error": "..."}`."""
    response = json_response({"status": status, "error": reason}, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="jtel"'
    return response


def refuse(status: int, reason: str) -> Refused:
    return Refused(error(status, reason))


# --- input ----------------------------------------------------------------------------------------


def missing(what: str) -> Refused:
    return refuse(400, f"Required parameter missing: {what}")


def invalid(name: str, why: str) -> Refused:
    return refuse(400, f"Invalid value for {name}: {why}")


def check_query(request: web.Request) -> MultiMapping[str]:
    """The query, once no value in it holds a NUL (PostgreSQL text cannot store one)."""
    name = nul_name(request.query.items())
    if name is not None:
        raise invalid(name, NUL_REASON)
    return request.query


def positive_id(text: str | None) -> int | None:
    """A positive bigint written in ASCII decimal digits, or None."""
    return decimal(text, minimum=1)


def flag(request: web.Request, name: str, *, default: bool) -> bool:
    text = request.query.get(name)
    if text is None:
        return default
    if text.lower() not in ("true", "false"):
        raise invalid(name, "must be true or false")
    return text.lower() == "true"


def number(request: web.Request, name: str, default: int, *, minimum: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    value = signed_decimal(text)
    if value is None:
        raise invalid(name, "an integer is required")
    if value < minimum:
        raise invalid(name, f"must be at least {minimum}")
    return value


def _value(spec: jtel.FieldSpec, value: object) -> ExtraValue:
    """One field's value checked against its kind and length; None for null."""
    if value is None:
        return None
    match spec.kind:
        case "int":
            return _java_int(spec, value)
        case "number":
            if isinstance(value, str) and jtel.JSON_NUMBER.fullmatch(value.strip()):
                return float(value)  # Jackson coerces a numeric text to a number field
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise invalid(spec.name, "a number is required")
            return value
        case "datetime":
            try:
                return datetime.fromisoformat(str(value)).isoformat()
            except ValueError:
                raise invalid(
                    spec.name, "a datetime like 2020-01-01T00:00:00 is required"
                ) from None
        case "text" | "phone":
            return _text(spec, value)
        case _:
            assert_never(spec.kind)


def _integer(value: object) -> object:
    """An integer's text as the integer, as Jackson coerces it to an int or long field by
    default ("7" is 7); any other value as it is, for the caller's type check."""
    if isinstance(value, str):
        number = signed_decimal(value.strip())
        return value if number is None else number
    return value


def _java_int(spec: jtel.FieldSpec, value: object) -> int:
    # A Java int: jtel's own service refuses what does not fit in 32 bits.
    value = _integer(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(spec.name, "an integer is required")
    if not -(2**31) <= value < 2**31:
        raise invalid(spec.name, "an integer from -2147483648 to 2147483647 is required")
    return value


def _text(spec: jtel.FieldSpec, value: object) -> str:
    # Jackson binds a JSON integer to a String field, so do we.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise invalid(spec.name, "a string is required")
    text = str(value)
    if NUL in text:
        raise invalid(spec.name, NUL_REASON)
    if spec.max_length is not None and len(text) > spec.max_length:
        raise refuse(400, f"Field too long: {spec.name} (at most {spec.max_length} characters)")
    return text


def _present(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip() != ""


def parse_contact(body: bytes) -> jtel.ContactInput:
    """The import body, checked in order: JSON, each field, then the required ones.

    Fields jtel's records carry but the import does not take (ID, run-time fields) and unknown
    names are ignored, so a record read with GET can be imported again as it is.
    """
    try:
        data: Any = decode_json(body)
    except msgspec.DecodeError:
        raise refuse(400, "Invalid JSON in request body") from None
    if not isinstance(data, dict):
        raise refuse(400, "Request body must be a JSON object (one dialler contact)")
    campaign_id = _integer(data.get("DiallerCampaignsID"))
    if campaign_id is not None and (
        isinstance(campaign_id, bool) or not isinstance(campaign_id, int)
    ):
        raise invalid("DiallerCampaignsID", "an integer is required")
    campaign_name = data.get("DiallerCampaignsName")
    if campaign_name is not None and not isinstance(campaign_name, str):
        raise invalid("DiallerCampaignsName", "a string is required")
    if campaign_name is not None and NUL in campaign_name:
        raise invalid("DiallerCampaignsName", NUL_REASON)
    values = {spec.name: _value(spec, data.get(spec.name)) for spec in jtel.IMPORT_FIELDS}
    if not _present(values["Name"]):
        raise missing("Name")
    if campaign_id is None and not (campaign_name or "").strip():
        raise missing("DiallerCampaignsID or DiallerCampaignsName")
    if not any(_present(values[name]) for name in jtel.PHONE_NAMES):
        raise missing("PhoneNumber1..PhoneNumber6 (at least one)")
    if campaign_id is not None and not 0 < campaign_id <= BIGINT_MAX:
        raise jtel.campaign_not_found()  # no such id can exist
    return jtel.ContactInput(campaign_id=campaign_id, campaign_name=campaign_name, values=values)


# --- shapes for the OpenAPI document -----------------------------------------------------------


class Status(msgspec.Struct, frozen=True):
    status: int


class Error(msgspec.Struct, frozen=True):
    status: int
    error: str


class ImportQuery(msgspec.Struct, frozen=True, kw_only=True):
    overwriteDuplicates: bool = False  # noqa: N815 - jtel's parameter name


class CampaignsQuery(msgspec.Struct, frozen=True, kw_only=True):
    """jtel's paging of a list (and the ordering it states, the only one supported)."""

    limitStart: Annotated[int, msgspec.Meta(ge=0)] = 0  # noqa: N815
    limitPageSize: Annotated[int, msgspec.Meta(ge=-1)] = -1  # noqa: N815
    filter: str = ""
    orderBy: str = "Name"  # noqa: N815
    ascending: bool = True


class ListQuery(CampaignsQuery, frozen=True, kw_only=True):
    """A campaign's contacts (diallerCampaignsID), or the contacts with a UserData (userData,
    in one campaign when diallerCampaignsID is given too)."""

    diallerCampaignsID: int | None = None  # noqa: N815
    userData: str | None = None  # noqa: N815


class DeleteQuery(msgspec.Struct, frozen=True, kw_only=True):
    userData: str  # noqa: N815


def errors(**rows: str) -> dict[int, Response]:
    codes = {"bad": 400, "auth": 401, "missing": 404, "conflict": 409, "large": 413}
    return {codes[key]: Response(text, Error) for key, text in rows.items()}


AUTH_401: Final = "Bad or missing Bearer token, or a ClientsID that is not the token's account"


# --- records as jtel shows them (the OpenAPI document's view of service.jtel's records) -------

_KIND_TYPES: Final[dict[str, Any]] = {
    "text": str | None,
    "phone": str | None,
    "int": int | None,
    "number": float | None,
    "datetime": str | None,
}


def _import_type(spec: jtel.FieldSpec) -> object:
    if spec.max_length is None:
        return _KIND_TYPES[spec.kind]
    return Annotated[str, msgspec.Meta(max_length=spec.max_length)] | None


def _runtime_type(name: str) -> object:
    if name.startswith("nTries"):
        return int
    return bool | None if name.startswith("b") else int | str | None


DiallerContact: Final = msgspec.defstruct(
    "DiallerContact",
    [
        ("ID", int),
        ("DiallerCampaignsID", int),
        *((s.name, _KIND_TYPES[s.kind]) for s in jtel.IMPORT_FIELDS),
        *((name, _runtime_type(name)) for name in jtel.RUNTIME_FIELDS),
        ("dtImported", str),
    ],
)
ImportContact: Final = msgspec.defstruct(
    "ImportDiallerContact",
    [
        ("DiallerCampaignsID", int | None, None),
        ("DiallerCampaignsName", str | None, None),
        *((s.name, _import_type(s), None) for s in jtel.IMPORT_FIELDS),
    ],
)
ContactRecords: Final = msgspec.defstruct(
    "DiallerContactRecords",
    [("records", list[DiallerContact]), ("count", int), ("status", int)],  # type: ignore[valid-type]
)


class DiallerCampaign(msgspec.Struct, frozen=True):
    """A campaign as jtel shows it (service.jtel.campaign_record); jtel's fields lead-ledger
    has no value for are null."""

    ID: int
    Name: str
    ClientsID: int
    bActive: bool  # noqa: N815
    DialMode: str
    Direction: str
    Assignment: str
    ContactPreviewTime: None
    nMaxParallelLines: None  # noqa: N815
    dtFrom: None  # noqa: N815
    dtTo: None  # noqa: N815
    LanguagesID: None
    bCallerIDActive: None  # noqa: N815


class CampaignsPage(msgspec.Struct, frozen=True):
    filter: str
    limitStart: int  # noqa: N815
    limitPageSize: int  # noqa: N815
    records: list[DiallerCampaign]
    count: int
    orderBy: str  # noqa: N815
    ascending: bool
    status: int


class CampaignRecords(msgspec.Struct, frozen=True):
    records: list[DiallerCampaign]
    count: int
    status: int


ContactsPage: Final = msgspec.defstruct(
    "DiallerContactsPage",
    [
        ("filter", str),
        ("limitStart", int),
        ("limitPageSize", int),
        ("records", list[DiallerContact]),  # type: ignore[valid-type]
        ("count", int),
        ("orderBy", str),
        ("ascending", bool),
        ("status", int),
    ],
)
