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

_NOT_CAPITALS: Final = re.compile(r"[^A-Z]")
_NOT_DIGITS: Final = re.compile(r"[^0-9]")
_NOT_NAME: Final = re.compile(r"[^-_0-9a-zA-Z]")
# What survives in each cleaned parameter (Vicidial's preg_replace, kept characters;
# non_agent_api.php L780-L971, with non_latin off). `user`, `pass` and the lead fields are
# read as sent: a ledger user's password is every dialect's (docs/vicidial.md).
_KEEP: Final = {
    "function": _NOT_NAME,
    "source": re.compile(r"[^0-9a-zA-Z]"),
    "phone_number": re.compile(r"[^,0-9]"),
    "lead_id": _NOT_DIGITS,
    "phone_code": _NOT_DIGITS,
    "lead_ids": re.compile(r"[^,0-9]"),
    "list_id": _NOT_DIGITS,
    "duplicate_check": _NOT_NAME,
    "search_method": _NOT_NAME,
    "search_location": _NOT_CAPITALS,
    "status": _NOT_NAME,
    "called_count": _NOT_DIGITS,
    "entry_list_id": _NOT_DIGITS,
    "gmt_offset_now": re.compile(r"[^-_.0-9]"),
    "archived_lead": re.compile(r"[^0-9a-zA-Z]"),
    # The Y/N flags keep their capitals: `Yes` is Y, `y` is nothing (off).
    **dict.fromkeys(
        (
            "dnc_check",
            "campaign_dnc_check",
            "insert_if_not_found",
            "no_update",
            "delete_lead",
            "update_phone_number",
            "reset_lead",
        ),
        _NOT_CAPITALS,
    ),
}


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
        """A Y/N option: on when its cleaned value is `Y` (`Yes` is; `y` is not)."""
        return self.get(name) == "Y"

    def dnc_option(self, name: str) -> bool:
        """`dnc_check`/`campaign_dnc_check` (Y|N|AREACODE): Vicidial checks the number for Y
        and for AREACODE alike (AREACODE adds its area code's wildcard entry, which a registry
        of numbers does not hold)."""
        return self.get(name) in ("Y", "AREACODE")


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
