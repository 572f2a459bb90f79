"""The parameters of a Vicidial non-agent API call, cleaned as `non_agent_api.php` cleans them
before any check (docs/vicidial.md, "Input cleaning"), and the lines it answers with.

Every answer is plain text: one line per outcome, `RESULT: reason - data` or
`RESULT: reason: |data|`, each ending in a newline.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from lead_ledger.ledger.phones import digits_only
from lead_ledger.service.inputs import NUL

# What survives in each cleaned parameter (Vicidial's preg_replace, kept characters).
_KEEP: Final = {
    "phone_number": re.compile(r"[^,0-9]"),
    "lead_id": re.compile(r"[^0-9]"),
    "phone_code": re.compile(r"[^0-9]"),
    "lead_ids": re.compile(r"[^,0-9]"),
    "list_id": re.compile(r"[^0-9]"),
    "duplicate_check": re.compile(r"[^-_0-9a-zA-Z]"),
    "search_method": re.compile(r"[^-_0-9a-zA-Z]"),
    "search_location": re.compile(r"[^A-Z]"),
}


_NOT_DIGITS: Final = re.compile(r"[^0-9]")


class Params:
    """A call's parameters: the query's over the form's (Vicidial reads `$_GET` first), each
    value cleaned; a missing one reads as empty, as PHP's unset variables do."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = {name: _clean(name, value) for name, value in values.items()}

    def get(self, name: str) -> str:
        return self._values.get(name, "")

    def given(self, name: str) -> bool:
        return name in self._values

    def number(self, name: str, *, default: int, cap: int) -> int:
        """A count such as `records`: its ASCII digits (Vicidial's preg_replace('/[^0-9]/')),
        `default` when it has none, at most `cap`. Leading zeros change nothing, and a number
        longer than the cap's is past it (int() refuses past 4,300 digits)."""
        digits = _NOT_DIGITS.sub("", self.get(name))
        if not digits:
            return default
        significant = digits.lstrip("0") or "0"
        return cap if len(significant) > len(str(cap)) else min(int(significant), cap)

    def flag(self, name: str) -> bool:
        """A Y/N option: only `Y` (any case) turns it on."""
        return self.get(name).upper() == "Y"

    def dnc_option(self, name: str) -> bool:
        """`dnc_check`/`campaign_dnc_check` (Y|N|AREACODE): Vicidial checks the number for Y
        and for AREACODE alike (AREACODE adds its area code's wildcard entry, which a registry
        of numbers does not hold)."""
        return self.get(name).upper() in ("Y", "AREACODE")


def dialable(phone: str) -> bool:
    """Whether a cleaned phone_number (digits and commas) holds a digit: Vicidial stores
    `,,,,,,` as a number; a lead here needs one it can dial."""
    return bool(digits_only(phone))


def _clean(name: str, value: str) -> str:
    # PostgreSQL text holds no NUL; no Vicidial field means anything by one.
    value = value.replace(NUL, "")
    keep = _KEEP.get(name)
    return keep.sub("", value) if keep is not None else value.strip()


def line(result: str, reason: str, data: str) -> str:
    """`RESULT: reason - data`, on one line whatever the data echoes."""
    return f"{result}: {reason} - {one_line(data)}"


def piped(result: str, reason: str, data: str) -> str:
    """`RESULT: reason: |data`: the data already holds its own trailing bars where Vicidial
    prints them. On one line whatever the data echoes."""
    return f"{result}: {reason}: |{one_line(data)}"


def one_line(data: str) -> str:
    """What an outcome's line echoes (a user, a source, a campaign_id, a vendor_lead_code as
    sent) without line breaks: one would print a second line, which a client reads as another
    outcome (a forged `SUCCESS: ...`)."""
    return data.replace("\r", "").replace("\n", "")


def join(*values: object) -> str:
    return "|".join("" if v is None else str(v) for v in values)
