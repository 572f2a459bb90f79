"""TForge's Vicidial lead archive API on the wire: its bodies, its messages, and its validation.

The vendor validates the raw JSON itself (its messages name the field and list the offending
values as sent), so the body is decoded untyped and checked here in the vendor's order rather
than by a typed msgspec decode, whose errors would not match the vendor's messages. A body that
is not JSON answers 500 with a Newtonsoft-style location, as the vendor's .NET service does.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any, Final, NoReturn

import msgspec
from aiohttp import web

from lead_ledger.api.edge import Refused, json_response
from lead_ledger.service.inputs import TOO_DEEP, decode_json
from lead_ledger.service.vicidial import MAX_LEAD_IDS, ArchiveRequest, DearchiveRequest

SUCCESS: Final = "lead_ids batch was successfully processed"
UNAUTHORIZED: Final = "unable to validate api user"
ARCHIVE_IN_HOURS: Final = "api cannot be executed during office hours time condition"
DEARCHIVE_OUT_OF_HOURS: Final = "api can only be executed during office hours time condition"
NOT_INTEGERS: Final = "lead_ids must only contain integer values"
EMPTY: Final = "lead_ids must contain atleast 1 value"  # sic: the vendor's spelling
TOO_MANY: Final = f"lead_ids cannot exceed {MAX_LEAD_IDS} values"
DUPLICATES: Final = "lead_ids cannot contain duplicate values"
MISSING: Final = "lead_ids does not exist"
NOT_AN_OBJECT: Final = "request body must be a JSON object"
TOO_LARGE: Final = "request body too large"
# Integers of more digits are not converted (Python's guard against quadratic parsing).
_DIGITS_READ: Final = sys.get_int_max_str_digits() or 4300
# ASP.NET Web API's own words for an unhandled exception, in the vendor's error body.
UNEXPECTED: Final = "An error has occurred."


class Message(msgspec.Struct, frozen=True):
    message: str


class LeadErrors(msgspec.Struct, frozen=True):
    """The vendor's error body: the message, how many lead ids are at fault, and which."""

    message: str
    lead_errors: int = 0
    lead_ids: list[Any] = []


class Processed(msgspec.Struct, frozen=True):
    message: str
    select_count: int
    insert_count: int
    update_count: int
    delete_count: int


def lead_errors(status: int, message: str, ids: Sequence[Any] = ()) -> web.Response:
    return json_response(LeadErrors(message, len(ids), list(ids)), status)


def parse_archive(body: bytes) -> ArchiveRequest:
    """The archive request; raises the vendor's answer to the first thing wrong with it."""
    data = _checked(body, ("insert_leads", "update_leads", "delete_leads"))
    return ArchiveRequest(
        data["insert_leads"], data["update_leads"], data["delete_leads"], data["lead_ids"]
    )


def parse_dearchive(body: bytes) -> DearchiveRequest:
    """The dearchive request (it has no update_leads, and reads none); or the vendor's answer."""
    data = _checked(body, ("insert_leads", "delete_leads"))
    return DearchiveRequest(data["insert_leads"], data["delete_leads"], data["lead_ids"])


def _checked(body: bytes, flags: Sequence[str]) -> dict[str, Any]:
    """The body's object once its flags and lead_ids passed the vendor's checks, in its order."""
    try:
        data: Any = decode_json(body)
    except msgspec.ValidationError:  # a DecodeError too: first
        # Valid JSON with a number msgspec does not read: a float beyond a double's range
        # (1e400) or an integer of more digits than Python converts (4,300).
        data = _read_with_unreadable_numbers(body)
    except msgspec.DecodeError as error:
        # Too deep has no one place to point at: the reason alone, as malformed JSON answers.
        message = TOO_DEEP if str(error) == TOO_DEEP else malformed_message(body, str(error))
        raise Refused(lead_errors(500, message)) from None
    if not isinstance(data, dict):
        raise Refused(lead_errors(500, NOT_AN_OBJECT))
    for flag in flags:
        if not isinstance(data.get(flag), bool):
            raise Refused(lead_errors(400, f"{flag} must be a boolean value"))
    _check_lead_ids(data.get("lead_ids"))
    return data


def _read_with_unreadable_numbers(body: bytes) -> object:
    """The body, read by the standard library with each number msgspec could not read kept as
    its text (`msgspec.Raw`: listed back as sent, and no integer); the vendor's 500 when the
    rest of it is not JSON after all."""

    def integer(text: str) -> int | msgspec.Raw:
        return int(text) if len(text.lstrip("-")) <= _DIGITS_READ else msgspec.Raw(text.encode())

    def number(text: str) -> float | msgspec.Raw:
        value = float(text)
        return value if math.isfinite(value) else msgspec.Raw(text.encode())

    def constant(text: str) -> NoReturn:  # NaN, Infinity: not JSON
        raise _NotJsonError(text)

    try:
        text = body.decode("utf-8")
        return json.loads(text, parse_int=integer, parse_float=number, parse_constant=constant)
    except UnicodeDecodeError as error:
        message = malformed_message(body, f"JSON is malformed: invalid utf-8 (byte {error.start})")
    except json.JSONDecodeError as error:
        offset = len(text[: error.pos].encode())
        message = malformed_message(body, f"JSON is malformed: {error.msg} (byte {offset})")
    except _NotJsonError as error:
        reason = f"JSON is malformed: invalid character (byte {body.find(error.literal.encode())})"
        message = malformed_message(body, reason)
    except RecursionError:
        message = TOO_DEEP
    raise Refused(lead_errors(500, message))


class _NotJsonError(Exception):
    def __init__(self, literal: str) -> None:
        super().__init__(literal)
        self.literal = literal


def _check_lead_ids(ids: object) -> None:
    if ids is None:
        raise Refused(lead_errors(400, EMPTY))
    if not isinstance(ids, list):
        raise Refused(lead_errors(400, NOT_INTEGERS, [ids]))  # one value, not a list of integers
    # bool is an int in Python but not in JSON; 1.0 is a JSON number, not an integer.
    wrong = [value for value in ids if not _is_integer(value)]
    if wrong:
        raise Refused(lead_errors(400, NOT_INTEGERS, wrong))
    if not ids:
        raise Refused(lead_errors(400, EMPTY))
    if len(ids) > MAX_LEAD_IDS:
        raise Refused(lead_errors(400, TOO_MANY))
    repeated = _repeated(ids)
    if repeated:
        raise Refused(lead_errors(400, DUPLICATES, repeated))


def _repeated(ids: list[Any]) -> list[Any]:
    """Each value that occurs more than once, once, in the order of its first repeat."""
    seen: set[int] = set()
    repeated: dict[int, None] = {}
    for value in ids:
        if value in seen:
            repeated[value] = None
        seen.add(value)
    return list(repeated)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def malformed_message(body: bytes, error: str) -> str:
    """msgspec's reason with a Newtonsoft-style location ("Path 'lead_ids[97]', line 104,
    position 5."), the shape the vendor's 500 shows, computed from msgspec's byte offset."""
    reason, _, rest = error.partition(" (byte ")
    offset = int(rest.rstrip(")")) if rest.rstrip(")").isdigit() else len(body)
    prefix = body[:offset].decode("utf-8", "replace")
    if offset < len(body):
        character = body[offset : offset + 1].decode("utf-8", "replace")
        reason = f"{reason} {character!r}"
    line = prefix.count("\n") + 1
    position = offset - (body.rfind(b"\n", 0, offset) + 1) + 1
    return f"{reason}. Path '{json_path(prefix)}', line {line}, position {position}."


def json_path(prefix: str) -> str:
    """The JSON path (`lead_ids[97]`) of the value being read where `prefix` ends."""
    stack: list[list[Any]] = []  # ["obj", key, expecting_key] or ["arr", index]
    i = 0
    while i < len(prefix):
        char = prefix[i]
        if char == '"':
            end = _string_end(prefix, i)
            if stack and stack[-1][0] == "obj" and stack[-1][2]:
                stack[-1][1:] = [prefix[i + 1 : end], False]
            i = end + 1
            continue
        if char in "{[":
            stack.append(["obj", None, True] if char == "{" else ["arr", 0])
        elif char in "}]" and stack:
            stack.pop()
        elif char == "," and stack:
            if stack[-1][0] == "arr":
                stack[-1][1] += 1
            else:
                stack[-1][2] = True
        i += 1
    return _render_path(stack)


def _string_end(text: str, start: int) -> int:
    """The index of the quote closing the string opened at `start` (or the end of `text`)."""
    end = start + 1
    while end < len(text) and text[end] != '"':
        end += 2 if text[end] == "\\" else 1
    return end


def _render_path(stack: list[list[Any]]) -> str:
    path = ""
    for frame in stack:
        if frame[0] == "arr":
            path += f"[{frame[1]}]"
        elif frame[1] is not None:
            path += f".{frame[1]}" if path else str(frame[1])
    return path
