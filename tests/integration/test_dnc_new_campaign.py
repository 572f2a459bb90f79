"""An account-wide do-not-call entry against a campaign created while it is written: the entry
covers every campaign the account has when it commits, so a lead inserted into the new campaign
meanwhile is refused or marked, never left callable."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import asyncpg
import pytest

from lead_ledger.ledger.events import LeadFields
from lead_ledger.service import dnc
from lead_ledger.service.accounts import NewCampaign, create_campaign
from lead_ledger.service.lead_inserts import NewLead, insert_lead_groups
from lead_ledger.service.transactions import write_transaction
from tests.factories import NATIVE, make_account, make_campaign
from tests.support import waiting_for_lock

PHONE = "9876500042"


async def test_an_account_wide_entry_covers_a_campaign_created_while_it_is_written(
    pool: asyncpg.Pool,
) -> None:
    """The entry's write reads the campaigns (only `first`) and waits for `first`'s lock; a
    campaign is created and a lead for the number goes into it, uncommitted; once `first` is
    free the entry must wait for the new campaign too, and the lead, committed, is marked."""
    account_id = await make_account(pool)
    first = await make_campaign(pool, account_id, "first")
    entry = dnc.NewDncEntry(phone=PHONE)
    lead = NewLead(
        fields=LeadFields(phone_numbers=[PHONE]),
        ctx=NATIVE,
        check_duplicates=True,
        rejections_stream="request-new-campaign",
    )
    async with pool.acquire() as holder, pool.acquire() as writer, pool.acquire() as inserter:
        inserting = AsyncExitStack()
        # A writer of `first` holds its lock, so the entry waits after reading the campaigns.
        async with write_transaction(holder, campaigns=[first]):
            adding = asyncio.create_task(dnc.add_numbers(writer, NATIVE, account_id, [entry]))
            await waiting_for_lock(pool, writer.get_server_pid())
            created = await create_campaign(inserter, NATIVE, account_id, NewCampaign(name="new"))
            await inserting.enter_async_context(write_transaction(inserter, campaigns=[created.id]))
            result = await insert_lead_groups(
                inserter, account_id=account_id, groups={created.id: [lead]}
            )
        # `first` is free: the entry goes on while the insert into the new campaign is open.
        await asyncio.wait({adding}, timeout=1.0)
        await inserting.aclose()
        (entry_id,) = await adding
    marks = await pool.fetch(
        "SELECT lead_id, entry_id FROM lead_dnc WHERE lead_id = ANY($1::bigint[])",
        list(result[created.id].inserted.values()),
    )
    assert not result[created.id].blocked, "checked before the entry committed: let in"
    assert [tuple(m) for m in marks] == [(result[created.id].inserted[0], entry_id)], (
        "the lead in the new campaign was left unmarked"
    )


async def test_an_entry_write_refuses_to_join_an_open_transaction(pool: asyncpg.Pool) -> None:
    """Run inside a transaction already open, the write could not roll back to run again (and
    would lock a new campaign after the account): it refuses before writing anything."""
    account_id = await make_account(pool)
    await make_campaign(pool, account_id, "first")
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(RuntimeError, match="transaction of its own"):
            await dnc.add_numbers(conn, NATIVE, account_id, [dnc.NewDncEntry(phone=PHONE)])
    assert await pool.fetchval("SELECT count(*) FROM dnc") == 0
