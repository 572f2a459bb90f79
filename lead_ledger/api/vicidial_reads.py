"""The read functions of Vicidial's non-agent API (lead_search, lead_all_info,
lead_field_info): none yet."""

from __future__ import annotations

from typing import Final

from lead_ledger.api.vicidial_calls import Function

FUNCTIONS: Final[dict[str, Function]] = {}
