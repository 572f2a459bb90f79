"""Text written into csv and xlsx files that people open in spreadsheets.

A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel,
LibreOffice and Google Sheets: a lead's name of `=HYPERLINK(...)` would run when the file of
refused rows is opened. OWASP's rule (CSV injection): prefix such a cell with a single quote,
which every spreadsheet shows as text and hides. The rule here is wider than OWASP's list, at
the cost of a quote on a few harmless cells: a line feed counts as a tab does, the full-width
forms of `=`, `+`, `-` and `@` (U+FF1D, U+FF0B, U+FF0D, U+FF20) count as those letters
(spreadsheets with an East Asian input method read them so), and leading spaces are looked
past (some spreadsheets trim them before they read a formula). One exception keeps phone
numbers as they were sent: a cell of nothing but digits, spaces, `(`, `)`, `.` and `-` after
its sign (`+91 98765-43210`) can name no function, so it is written as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Final

import msgspec

FORMULA_STARTS: Final = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
# A cell starting with one of these may be a formula (a space: look past the spaces).
_MAYBE_FORMULA: Final = FORMULA_STARTS | {" "}
_SIGNED_NUMBER: Final = re.compile(r"[+-][0-9 ().\-]*").fullmatch
_json: Final = msgspec.json.Encoder().encode


def spreadsheet_text(value: object) -> str:
    """`value` as cell text that no spreadsheet reads as a formula (None: blank)."""
    cell = spreadsheet_cell(value)
    return "" if cell is None else str(cell)


def spreadsheet_row(values: Iterable[object]) -> list[object]:
    """`spreadsheet_cell` of each value; the common cells (blank, text that starts no
    formula) without a call each, for an export's millions of cells."""
    starts = _MAYBE_FORMULA
    return [
        value
        if value is None or (type(value) is str and value[:1] not in starts)
        else spreadsheet_cell(value)
        for value in values
    ]


def spreadsheet_cell(value: object) -> object:
    """`value` as a csv writer takes it, escaped: text that no spreadsheet reads as a
    formula, a list as its items joined by ", ", a flag as true/false; numbers and None (blank)
    as they are. On the hot path of every export: the common cases return first."""
    kind = type(value)
    if kind is str:
        text: str = value  # type: ignore[assignment]
        if (
            text[:1] in _MAYBE_FORMULA
            and text.lstrip(" ")[:1] in FORMULA_STARTS
            and not _SIGNED_NUMBER(text)
        ):
            return "'" + text
        return text
    if value is None or kind is int or kind is float:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is list:
        text = ", ".join(str(item) for item in value)  # type: ignore[attr-defined]
    elif isinstance(value, datetime):
        text = _json(value)[1:-1].decode()  # RFC 3339, as the API's JSON writes times
    else:
        text = str(value)
    return spreadsheet_cell(text)
