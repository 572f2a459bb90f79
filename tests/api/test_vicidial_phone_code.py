"""A Vicidial lead's `phone_code` names the country its numbers are dialled in: they are read
there, so that the do-not-call registry, an erasure and the gmt offset see the number as dialled
(`+1 202-555-0123` for `phone_code=1`, `phone_number=2025550123` on an Indian account), and
its refusals and its past numbers are found by that spelling too."""

from __future__ import annotations

import asyncpg

from tests.api.test_erasures import erase
from tests.api.test_ozonetel_add import Account
from tests.api.test_vicidial_non_agent import (
    Tenant,
    add,
    added_id,
    native_lead,
    tenant,
    update,
)
from tests.support import Client


def account(who: Tenant) -> Account:
    """The tenant as the erasure tests' helper takes it (the native key is all it uses)."""
    key = who.native["Authorization"].removeprefix("Bearer ")
    return Account(name="acme", key=key, native_key=key)


async def test_a_lead_with_another_country_code_is_found_by_its_e164_number(
    client: Client, pool: asyncpg.Pool
) -> None:
    """A US number on an Indian account, and its refused duplicate: both erased by the number
    written with +1; a lead dialled with the account's own code stays."""
    who = await tenant(client)
    lead = added_id(await add(client, who, "2025550123", phone_code="1", first_name="Asha"))
    refused = await add(client, who, "2025550123", phone_code="1", duplicate_check="DUPLIST")
    assert refused.startswith("ERROR: add_lead DUPLICATE PHONE NUMBER IN LIST")
    other = added_id(await add(client, who, "9812345678", "second", phone_code="91"))
    erasure = await erase(client, account(who), {"phone": "+1 202-555-0123"})
    assert erasure["lead_ids"] == [lead]
    assert erasure["subjects"] == 2  # the lead and the refused row
    assert await pool.fetchval("SELECT array_agg(lead_id) FROM leads") == [other]


async def test_a_deleted_lead_and_a_changed_code_are_found_by_every_number(
    client: Client, pool: asyncpg.Pool
) -> None:
    """The spelling is recorded with the write: a lead deleted since is found by it, and so is
    a lead by each number update_lead gave it, the old and the new."""
    who = await tenant(client)
    gone = added_id(await add(client, who, "2025550123", phone_code="1"))
    assert (await update(client, who, lead_id=gone, delete_lead="Y")).startswith("SUCCESS")
    moved = added_id(await add(client, who, "4155550134", phone_code="1"))
    changed = await update(
        client,
        who,
        lead_id=moved,
        update_phone_number="Y",
        phone_number="07700900123",
        phone_code="44",
    )
    assert changed.startswith("SUCCESS")
    assert (await erase(client, account(who), {"phone": "+12025550123"}))["lead_ids"] == [gone]
    uk = await erase(client, account(who), {"phone": "+44 7700 900123"})
    assert uk["lead_ids"] == [moved]
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0


async def test_update_lead_inserting_with_a_code_is_found_by_it(client: Client) -> None:
    """insert_if_not_found=Y with phone_code 1: the lead added is found by +1 and its digits."""
    who = await tenant(client)
    answer = await update(
        client,
        who,
        search_method="PHONE_NUMBER",
        phone_number="2025550123",
        insert_if_not_found="Y",
        phone_code="1",
        list_id=who.lists["sales"],
    )
    lead = int(answer.split("|")[-3])
    erasure = await erase(client, account(who), {"phone": "1 (202) 555-0123"})
    assert erasure["lead_ids"] == [lead]


async def test_a_blocked_foreign_number_is_refused_and_marked(client: Client) -> None:
    """A UK entry refuses add_lead's UK number with dnc_check and marks it without; the gmt
    offset is London's, not the account's."""
    who = await tenant(client)
    blocked = await client.post("/v1/dnc", json=[{"phone": "+44 20 7946 0958"}], headers=who.native)
    assert blocked.status == 201, await blocked.text()
    refused = await add(client, who, "2079460958", phone_code="44", dnc_check="Y")
    assert refused == f"ERROR: add_lead PHONE NUMBER IN DNC - 2079460958|{who.username}\n"
    answer = await add(client, who, "2079460958", phone_code="44")
    assert answer.split("|")[3] == "0.00"  # London in December
    lead = await native_lead(client, who, added_id(answer))
    assert (lead["dedupe_keys"], lead["dnc"]) == (["+442079460958"], True)
    indian = await native_lead(client, who, added_id(await add(client, who, "2079460958")))
    assert (indian["dedupe_keys"], indian["dnc"]) == (["+912079460958"], False)


async def test_update_lead_giving_a_code_reads_the_numbers_again(
    client: Client, pool: asyncpg.Pool
) -> None:
    """A lead added without a code is an Indian number; given phone_code 44, it is the UK one,
    found by that spelling; a lead moved from 44 to 91 is still found by the UK spelling its
    history holds."""
    who = await tenant(client)
    lead = added_id(await add(client, who, "2079460958", first_name="Asha"))
    assert (await update(client, who, lead_id=lead, phone_code="44")).startswith("SUCCESS")
    assert (await native_lead(client, who, lead))["dedupe_keys"] == ["+442079460958"]
    uk = await erase(client, account(who), {"phone": "+44 20 7946 0958"})
    assert uk["lead_ids"] == [lead]
    other = added_id(await add(client, who, "2079460958", phone_code="44"))
    assert (await update(client, who, lead_id=other, phone_code="91")).startswith("SUCCESS")
    assert (await native_lead(client, who, other))["dedupe_keys"] == ["+912079460958"]
    old = await erase(client, account(who), {"phone": "+44 20 7946 0958"})
    assert old["lead_ids"] == [other]
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0
