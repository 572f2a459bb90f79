"""Lookup digests for the numbers a lead is dialled with under a separate country code
(Vicidial's `phone_code`): its dedupe keys read `phone_number` in the account's region, as
Vicidial's duplicate checks compare it alone, so `+1 202-555-0123` would not find a lead added
on an Indian account as `phone_code=1`, `phone_number=2025550123` without them
(ledger/subject_lookup.py, docs/erasure.md).

They are recorded with each write that gives a lead such a number, in its transaction, and stay
until the lead is erased: a number the lead no longer has still finds it, as its old dedupe keys
do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import phonenumbers

from lead_ledger.ledger import key_store
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.phones import digits_only
from lead_ledger.ledger.sealing import lead_subject
from lead_ledger.ledger.subject_lookup import dialled_tokens
from lead_ledger.service.writer import account_digest

SELECT_DIALLED: Final = """
SELECT lead_id, phone_numbers, extra->>'phone_code' AS phone_code FROM leads
WHERE lead_id = ANY($1::bigint[]) AND extra ? 'phone_code'
"""

Dialled = tuple[str, Sequence[str]]  # a lead's phone_code and its numbers


async def record_dialled(
    conn: Connection, account_id: int, region: str | None, leads: Mapping[int, Dialled]
) -> None:
    """Record the spellings of these leads' numbers with their codes. A code that is the
    account's own adds nothing: its spelling is the lead's dedupe key."""
    own = phonenumbers.country_code_for_region(region.upper()) if region else 0
    tokens = {
        lead_subject(lead_id): found
        for lead_id, (code, numbers) in leads.items()
        if digits_only(code).lstrip("0") not in ("", str(own))
        and (found := dialled_tokens(code, numbers))
    }
    if tokens:
        digest = await account_digest(conn, account_id)
        await key_store.add_lookup(
            conn, account_id, {subject: map(digest, found) for subject, found in tokens.items()}
        )


async def record_dialled_of(
    conn: Connection, account_id: int, region: str | None, lead_ids: Iterable[int]
) -> None:
    """`record_dialled` for live leads as they are now (after an update gave them a number or a
    code)."""
    rows = await conn.fetch(SELECT_DIALLED, sorted(set(lead_ids)))
    await record_dialled(
        conn,
        account_id,
        region,
        {r["lead_id"]: (r["phone_code"], r["phone_numbers"]) for r in rows},
    )
