"""Vicidial's `add_dnc_phone` and `delete_dnc_phone` (non_agent_api.php) on the account's
do-not-call registry (docs/dnc.md): `campaign_id` names a campaign, or `SYSTEM_INTERNAL` the
account-wide list."""

from __future__ import annotations

from typing import Final

from lead_ledger.ledger.connection import Connection
from lead_ledger.service import dnc
from lead_ledger.service.vicidial_login import ApiUser
from lead_ledger.service.vicidial_params import Params, join, line, piped
from lead_ledger.service.writer import Context

SYSTEM_INTERNAL: Final = "SYSTEM_INTERNAL"
MIN_PHONE_DIGITS, MAX_PHONE_DIGITS = 6, 20
MIN_CAMPAIGN, MAX_CAMPAIGN = 2, 30


def _fields(function: str, user: ApiUser, params: Params) -> tuple[str, str, str | None]:
    """The number, the campaign as given, and the problem line when one is missing or out of
    bounds (Vicidial's YOU MUST USE ALL REQUIRED FIELDS)."""
    phone, campaign = params.get("phone_number"), params.get("campaign_id")
    complete = MIN_PHONE_DIGITS <= len(phone) <= MAX_PHONE_DIGITS and (
        MIN_CAMPAIGN <= len(campaign) <= MAX_CAMPAIGN
    )
    problem = None
    if not complete:
        data = join(user.username, phone, campaign)
        problem = piped("ERROR", f"{function} YOU MUST USE ALL REQUIRED FIELDS", data)
    return phone, campaign, problem


async def add_dnc_phone(conn: Connection, ctx: Context, user: ApiUser, params: Params) -> list[str]:
    function = "add_dnc_phone"
    phone, campaign, problem = _fields(function, user, params)
    if problem is not None:
        return [problem]
    data = join(user.username, phone, campaign)
    entry = dnc.NewDncEntry(phone=phone, campaign=None if campaign == SYSTEM_INTERNAL else campaign)
    try:
        await dnc.add_numbers(conn, ctx, user.account_id, [entry])
    except dnc.DncError as error:
        if error.fault == "exists":
            return [piped("ERROR", f"{function} DNC NUMBER ALREADY EXISTS", data)]
        return [piped("ERROR", f"{function} YOU MUST USE ALL REQUIRED FIELDS", data)]
    return [line("SUCCESS", f"{function} DNC NUMBER HAS BEEN ADDED", data)]


async def delete_dnc_phone(
    conn: Connection, ctx: Context, user: ApiUser, params: Params
) -> list[str]:
    function = "delete_dnc_phone"
    phone, campaign, problem = _fields(function, user, params)
    if problem is not None:
        return [problem]
    data = join(user.username, phone, campaign)
    campaigns = await dnc.campaigns_by_name(conn, user.account_id)
    scope = None if campaign == SYSTEM_INTERNAL else campaigns.get(campaign, -1)
    (held,) = await dnc.entries_holding(conn, user.account_id, [phone])
    ids = [block.entry_id for block in held if block.campaign_id == scope]
    if not ids or not await dnc.remove_entries(conn, ctx, user.account_id, ids):
        return [piped("ERROR", f"{function} DNC NUMBER DOES NOT EXIST", data)]
    return [line("SUCCESS", f"{function} DNC NUMBER HAS BEEN DELETED", data)]
