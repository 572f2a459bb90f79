"""An erasure against writers of the same person's campaign: what they commit before the
erasure holds its campaign locks (a duplicate refused because the person's lead exists) is
erased with the lead; nothing that saw the lead live outlives its erasure."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import asyncpg

from lead_ledger.ledger.events import LeadFields
from lead_ledger.service.erasures import ErasureRequest, erase
from lead_ledger.service.lead_inserts import NewLead, insert_lead_groups
from lead_ledger.service.transactions import write_transaction
from tests.factories import NATIVE, make_account, make_campaign
from tests.support import waiting_for_lock

PHONE = "9876500077"
OPEN_REFUSALS: str = """
SELECT count(*) FROM subject_keys
WHERE subject_id LIKE 'refused-%' AND wrapped_key IS NOT NULL
"""


def _lead(*, check: bool) -> NewLead:
    return NewLead(
        fields=LeadFields(phone_numbers=[PHONE], first_name="Asha"),
        ctx=NATIVE,
        check_duplicates=check,
        rejections_stream="request-erasure-race",
    )


async def test_a_refusal_committed_while_the_erasure_waits_is_erased(pool: asyncpg.Pool) -> None:
    """A duplicate of the person's lead is refused (naming the lead) in a write that holds the
    campaign while the erasure, having found only the lead, waits for that campaign; the
    refusal commits first, so the erasure must erase its row too."""
    account_id = await make_account(pool)
    campaign_id = await make_campaign(pool, account_id)
    lead_id = await _inserted(pool, account_id, campaign_id)
    async with pool.acquire() as writer, pool.acquire() as eraser:
        async with write_transaction(writer, campaigns=[campaign_id]):
            refused = await insert_lead_groups(
                writer, account_id=account_id, groups={campaign_id: [_lead(check=True)]}
            )
            assert refused[campaign_id].duplicates == {0: [lead_id]}
            erasing = asyncio.create_task(
                erase(eraser, NATIVE, account_id, ErasureRequest(phone=PHONE))
            )
            await waiting_for_lock(pool, eraser.get_server_pid())
        erasure = await erasing
    assert erasure.lead_ids == [lead_id]
    assert erasure.subjects == 2, "the lead and the refused row"
    assert await pool.fetchval(OPEN_REFUSALS) == 0


async def test_a_lead_in_another_campaign_found_under_the_locks_is_erased_under_its_lock(
    pool: asyncpg.Pool,
) -> None:
    """The person's second lead goes into another campaign while the erasure waits for the
    first's: found when the erasure reads again, it is erased only once its own campaign is
    locked too (the erasure waits for that campaign's writer), never beside it."""
    account_id = await make_account(pool)
    first = await make_campaign(pool, account_id, "first")
    second = await make_campaign(pool, account_id, "second")
    lead_id = await _inserted(pool, account_id, first)
    async with pool.acquire() as holder, pool.acquire() as eraser, pool.acquire() as other:
        busy = AsyncExitStack()
        async with write_transaction(holder, campaigns=[first]):
            erasing = asyncio.create_task(
                erase(eraser, NATIVE, account_id, ErasureRequest(phone=PHONE))
            )
            await waiting_for_lock(pool, eraser.get_server_pid())
            second_id = await _inserted(pool, account_id, second)
            # A writer of the second campaign, busy when the erasure reads again.
            await busy.enter_async_context(write_transaction(other, campaigns=[second]))
        done, _ = await asyncio.wait({erasing}, timeout=1.0)
        assert not done, "the erasure went on without the second campaign's lock"
        await busy.aclose()
        erasure = await erasing
    assert erasure.lead_ids == [lead_id, second_id]


async def _inserted(pool: asyncpg.Pool, account_id: int, campaign_id: int) -> int:
    """A new lead of the person in the campaign, committed; its id."""
    async with pool.acquire() as conn, write_transaction(conn, campaigns=[campaign_id]):
        groups = {campaign_id: [_lead(check=False)]}
        result = await insert_lead_groups(conn, account_id=account_id, groups=groups)
    (lead_id,) = result[campaign_id].inserted.values()
    return lead_id
