"""The read functions of Vicidial's non-agent API: lead_search, lead_all_info and
lead_field_info (service/vicidial_reads.py; docs/vicidial.md). Each reads the caller's
account only and writes nothing."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from lead_ledger.api.keys import POOL
from lead_ledger.api.vicidial_calls import Function
from lead_ledger.service import vicidial_reads
from lead_ledger.service.vicidial_login import ApiUser
from lead_ledger.service.vicidial_params import Params
from lead_ledger.service.writer import Context


async def lead_search(
    request: web.Request, _ctx: Context, user: ApiUser, params: Params
) -> list[str]:
    async with request.app[POOL].acquire() as conn:
        return await vicidial_reads.lead_search(conn, user.account_id, user.username, params)


async def lead_all_info(
    request: web.Request, _ctx: Context, user: ApiUser, params: Params
) -> list[str]:
    async with request.app[POOL].acquire() as conn:
        return await vicidial_reads.lead_all_info(conn, user.account_id, user.username, params)


async def lead_field_info(
    request: web.Request, _ctx: Context, user: ApiUser, params: Params
) -> list[str]:
    async with request.app[POOL].acquire() as conn:
        return await vicidial_reads.lead_field_info(conn, user.account_id, user.username, params)


FUNCTIONS: Final[dict[str, Function]] = {
    "lead_search": lead_search,
    "lead_all_info": lead_all_info,
    "lead_field_info": lead_field_info,
}
