"""Text written into csv and xlsx files that people open in spreadsheets.

A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel,
LibreOffice and Google Sheets: a lead's name of `=HYPERLINK(...)` would run when the file of
refused rows is opened. OWASP's rule (CSV injection): prefix such a cell with a single quote,
which every spreadsheet shows as text and hides. One exception keeps phone numbers as they
were sent: a cell of nothing but digits, spaces, `(`, `)`, `.` and `-` after its sign
(`+91 98765-43210`) can name no function, so it is written as it is.
"""

from __future__ import annotations

import re
from typing import Final

_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_SIGNED_NUMBER: Final = re.compile(r"[+-][0-9 ().\-]*")


def spreadsheet_text(value: object) -> str:
    """`value` as cell text that no spreadsheet reads as a formula (None: blank)."""
    if value is None:
        return ""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if text.startswith(_FORMULA_STARTS) and not _SIGNED_NUMBER.fullmatch(text):
        return "'" + text
    return text
