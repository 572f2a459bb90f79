"""Vicidial's read functions through the real app, by GET and by POST: lead_search,
lead_all_info and lead_field_info, every answer line, on live leads and with `archived_lead=Y`
on the archive, one account's leads never another's, a do-not-call mark reading DNC. Every
test ends with `projections verify`."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import LeadFields
from lead_ledger.service import lead_inserts
from lead_ledger.service.vicidial_reads import COLUMNS, SEARCH_HEADER
from lead_ledger.service.writer import Context
from tests.api.test_flexydial import admin_post
from tests.api.test_vicidial_non_agent import (
    Tenant,
    add,
    added_id,
    api,
    call,
    make_client,
    native_lead,
    tenant,
)
from tests.support import Client

__all__ = ["api", "make_client"]  # fixtures, imported to be found here

METHODS = pytest.mark.parametrize("method", ["GET", "POST"])
HEADER = "|".join(COLUMNS)


async def read(api: Client, who: Tenant, method: str, function: str, **params: Any) -> str:
    return await call(api, who, method, function=function, **params)


async def account_id(pool: asyncpg.Pool, who: Tenant) -> int:
    found: int = await pool.fetchval(
        "SELECT account_id FROM campaigns WHERE campaign_id = $1", who.lists["sales"]
    )
    return found


async def insert(pool: asyncpg.Pool, who: Tenant, fields: LeadFields) -> int:
    """A lead written directly, with what add_lead cannot set (agent, status, call columns)."""
    account = await account_id(pool, who)
    ctx = Context(actor=Actor(dialect="native", account_id=account), request_id="t")
    async with pool.acquire() as conn, conn.transaction():
        result = await lead_inserts.insert_leads(
            conn,
            ctx,
            account_id=account,
            campaign_id=who.lists["second"],
            rows=[fields],
            check_duplicates=False,
        )
    return result.inserted[0]


async def archive(api: Client, pool: asyncpg.Pool, who: Tenant, lead_ids: list[int]) -> None:
    """Through TForge's archive route, with a vicidial key of the tenant's account."""
    account = await account_id(pool, who)
    credential = await admin_post(api, f"/accounts/{account}/credentials", {"api": "vicidial"})
    body = {"insert_leads": True, "update_leads": True, "delete_leads": True, "lead_ids": lead_ids}
    headers = {"Authorization": f"Key={credential['key']}"}
    response = await api.post("/vicidial/leads/archive", json=body, headers=headers)
    assert response.status == 200, await response.text()


async def full_lead(api: Client, who: Tenant) -> int:
    return added_id(
        await add(
            api,
            who,
            "9876543210",
            vendor_lead_code="VC-1",
            source_id="crm",
            phone_code="91",
            title="Ms",
            first_name="Asha",
            middle_initial="K",
            last_name="Rao",
            address1="1 Main St",
            address2="Flat 2",
            address3="Block C",
            city="Pune",
            state="MH",
            province="West",
            postal_code="411001",
            country_code="IND",
            gender="F",
            date_of_birth="1990-01-02",
            alt_phone="9812345678",
            email="asha@example.com",
            security_phrase="blue",
            comments="call after 5",
            rank="5",
            owner="team-a",
        )
    )


def full_row(who: Tenant, lead_id: int, status: str = "NEW") -> str:
    sales = who.lists["sales"]
    return (
        f"{status}||VC-1|crm|{sales}|5.50|91|9876543210|Ms|Asha|K|Rao|1 Main St|Flat 2|Block C"
        f"|Pune|MH|West|411001|IND|F|1990-01-02|9812345678|asha@example.com|blue|call after 5"
        f"|0||5|team-a|0|{lead_id}"
    )


# --- lead_all_info -------------------------------------------------------------------------------


@METHODS
async def test_lead_all_info_prints_every_column_in_vicidials_order(
    api: Client, method: str
) -> None:
    """By lead_id: the 32 columns, the default status `new` as NEW, missing ones as defaults."""
    who = await tenant(api)
    lead_id = await full_lead(api, who)
    answer = await read(api, who, method, "lead_all_info", lead_id=lead_id)
    assert answer == full_row(who, lead_id) + "\n"
    with_header = await read(api, who, method, "lead_all_info", lead_id=lead_id, header="YES")
    assert with_header == f"{HEADER}\n{full_row(who, lead_id)}\n"
    assert HEADER == (
        "status|user|vendor_lead_code|source_id|list_id|gmt_offset_now|phone_code|phone_number"
        "|title|first_name|middle_initial|last_name|address1|address2|address3|city|state"
        "|province|postal_code|country_code|gender|date_of_birth|alt_phone|email"
        "|security_phrase|comments|called_count|last_local_call_time|rank|owner|entry_list_id"
        "|lead_id"
    )


@METHODS
async def test_lead_all_info_reads_agent_status_and_call_columns(
    api: Client, pool: asyncpg.Pool, method: str
) -> None:
    """Agent as user, own status, call columns from extra; `stage` picks the delimiter."""
    who = await tenant(api)
    fields = LeadFields(
        phone_numbers=["+91 98765 43210"],
        first_name="Ravi",
        agent="a1",
        status="SALE",
        priority=2,
        extra={
            "called_count": 3,
            "last_local_call_time": "2026-01-02 10:00:00",
            "entry_list_id": 7,
        },
    )
    lead_id = await insert(pool, who, fields)
    second = who.lists["second"]
    row = [
        "SALE", "a1", "", "", str(second), "", "", "+91 98765 43210", "", "Ravi",
        *([""] * 10), "", "", "", "", "", "", "3", "2026-01-02 10:00:00", "2", "", "7",
        str(lead_id),
    ]  # fmt: skip
    assert len(row) == len(COLUMNS)
    assert await read(api, who, method, "lead_all_info", lead_id=lead_id) == "|".join(row) + "\n"
    for stage, delimiter in (("csv", ","), ("tab", "\t"), ("newline", "\n"), ("nope", "|")):
        answer = await read(api, who, method, "lead_all_info", lead_id=lead_id, stage=stage)
        assert answer == delimiter.join(row) + "\n"
    csv = await read(api, who, method, "lead_all_info", lead_id=lead_id, stage="csv", header="YES")
    assert csv == f"{HEADER.replace('|', ',')}\n{','.join(row)}\n"


@METHODS
async def test_lead_all_info_by_phone_is_newest_first_with_a_header_per_lead(
    api: Client, method: str
) -> None:
    """By number in any spelling: newest first, names before each; alt_phone does not match."""
    who = await tenant(api)
    older = added_id(await add(api, who, "9876543210"))
    newer = added_id(await add(api, who, "+91 98765-43210", "second"))
    await add(api, who, "9812345678", alt_phone="9876543210")
    answer = await read(
        api, who, method, "lead_all_info", phone_number="919876543210", header="YES"
    )
    lines = answer.splitlines()
    assert [line.split("|")[-1] for line in lines] == ["lead_id", str(newer), "lead_id", str(older)]
    assert lines[0] == lines[2] == HEADER
    assert lines[1].split("|")[7] == "919876543210"


@METHODS
async def test_lead_all_info_lead_not_found(api: Client, method: str) -> None:
    """No lead of that id or number, no usable lead_id or number: user|lead_id|phone_number."""
    who = await tenant(api)
    user = who.username
    lead_id = added_id(await add(api, who, "9876543210"))
    for params, data in (
        ({"lead_id": lead_id + 100}, f"{lead_id + 100}|"),
        ({"phone_number": "9800000000"}, "|9800000000"),
        ({}, "|"),
        ({"phone_number": "98765"}, "|98765"),
        ({"phone_number": "98765432109876543210"}, "|98765432109876543210"),
        ({"phone_number": "9876543210,9800000000"}, "|9876543210,9800000000"),
        ({"lead_id": "12345678901234567890"}, "12345678901234567890|"),
    ):
        answer = await read(api, who, method, "lead_all_info", **params)
        assert answer == f"ERROR: lead_all_info LEAD NOT FOUND: {user}|{data}\n"


# --- lead_search ---------------------------------------------------------------------------------


@METHODS
async def test_lead_search_answers_a_line_per_number_in_the_order_given(
    api: Client, method: str
) -> None:
    """A line per valid number in order, ids newest first joined by `-`; Vicidial's header."""
    who = await tenant(api)
    first = added_id(await add(api, who, "9876543210"))
    second = added_id(await add(api, who, "9876543210", "second"))
    other = added_id(await add(api, who, "9812345678"))
    await add(api, who, "9800000001", alt_phone="9800000000")
    numbers = "9876543210,12345,9800000000,919812345678,9876543210,12345678901234567890"
    answer = await read(api, who, method, "lead_search", phone_number=numbers, header="YES")
    assert answer == (
        f"{SEARCH_HEADER}\n"
        f"9876543210|2|{second}-{first}\n"
        "9800000000|0|\n"
        f"919812345678|1|{other}\n"
        f"9876543210|2|{second}-{first}\n"
    )
    assert SEARCH_HEADER == "search_keyrecords_foundlead_ids"
    plain = await read(api, who, method, "lead_search", phone_number="9812345678")
    assert plain == f"9812345678|1|{other}\n"


@METHODS
async def test_lead_search_records_limits_the_whole_search_newest_first(
    api: Client, method: str
) -> None:
    """`records` caps the leads found across every number, the newest kept; 1000 by default."""
    who = await tenant(api)
    ids = [added_id(await add(api, who, "9876543210")) for _ in range(3)]
    last = added_id(await add(api, who, "9812345678"))
    search = "9876543210,9812345678"
    capped = await read(api, who, method, "lead_search", phone_number=search, records="2")
    assert capped == f"9876543210|1|{ids[2]}\n9812345678|1|{last}\n"
    everything = await read(api, who, method, "lead_search", phone_number=search)
    assert everything == f"9876543210|3|{ids[2]}-{ids[1]}-{ids[0]}\n9812345678|1|{last}\n"
    huge = await read(api, who, method, "lead_search", phone_number=search, records="9" * 40)
    assert huge == everything


@METHODS
async def test_lead_search_no_matches_and_no_valid_search_method(api: Client, method: str) -> None:
    """NO MATCHES echoes what was asked; a short number or non-phone method: NO VALID METHOD."""
    who = await tenant(api)
    user = who.username
    await add(api, who, "9876543210")
    none = await read(
        api, who, method, "lead_search", phone_number="9800000000,12345", vendor_lead_code="V;1"
    )
    assert (
        none == f"ERROR: lead_search NO MATCHES FOUND IN THE SYSTEM: |{user}||V1|9800000000,12345\n"
    )
    zero = await read(api, who, method, "lead_search", phone_number="9876543210", records="0")
    assert zero == f"ERROR: lead_search NO MATCHES FOUND IN THE SYSTEM: |{user}|||9876543210\n"
    short = await read(api, who, method, "lead_search", phone_number="12345", lead_id="7")
    assert short == (
        f"ERROR: lead_search NO VALID SEARCH METHOD - {user}|PHONE_NUMBER|7(0)|(0)|12345(0)\n"
    )
    vendor = await read(
        api,
        who,
        method,
        "lead_search",
        phone_number="9876543210",
        search_method="VENDOR_LEAD_CODE",
        vendor_lead_code="VC-1",
    )
    assert vendor == (
        f"ERROR: lead_search NO VALID SEARCH METHOD - {user}|VENDOR_LEAD_CODE|(0)|VC-1(0)"
        "|9876543210(0)\n"
    )


# --- lead_field_info -----------------------------------------------------------------------------


@METHODS
async def test_lead_field_info_answers_each_columns_raw_value(api: Client, method: str) -> None:
    """Each of the 32 columns, its name in any case: the value alone on its line."""
    who = await tenant(api)
    lead_id = await full_lead(api, who)
    values = full_row(who, lead_id).split("|")
    for name, value in zip(COLUMNS, values, strict=True):
        answer = await read(api, who, method, "lead_field_info", lead_id=lead_id, field_name=name)
        assert answer == f"{value}\n", name
    upper = await read(
        api, who, method, "lead_field_info", lead_id=lead_id, field_name="FIRST_NAME"
    )
    assert upper == "Asha\n"


@METHODS
async def test_lead_field_info_refusals(api: Client, method: str) -> None:
    """Bad lead_id or field_name: INVALID SEARCH PARAMETERS; an unknown lead: LEAD NOT FOUND."""
    who = await tenant(api)
    user = who.username
    lead_id = added_id(await add(api, who, "9876543210"))
    invalid = "ERROR: lead_field_info INVALID SEARCH PARAMETERS"
    for params, data in (
        ({"field_name": "status"}, "|status"),
        ({"lead_id": lead_id}, f"{lead_id}|"),
        ({"lead_id": "123456789012", "field_name": "status"}, "123456789012|status"),
        ({"lead_id": lead_id, "field_name": "entry_date"}, f"{lead_id}|entry_date"),
        ({"lead_id": lead_id, "field_name": "pass;word"}, f"{lead_id}|password"),
    ):
        answer = await read(api, who, method, "lead_field_info", **params)
        assert answer == f"{invalid}: {user}|{data}\n"
    missing = await read(
        api, who, method, "lead_field_info", lead_id=lead_id + 100, field_name="status"
    )
    assert missing == f"ERROR: lead_field_info LEAD NOT FOUND: {user}|{lead_id + 100}\n"


# --- the archive, accounts, do-not-call ----------------------------------------------------------


@METHODS
async def test_archived_lead_reads_the_archive(
    api: Client, pool: asyncpg.Pool, method: str
) -> None:
    """An archived lead: gone from live reads, found by all three with archived_lead=Y."""
    who = await tenant(api)
    user = who.username
    lead_id = await full_lead(api, who)
    live = added_id(await add(api, who, "9876543210"))
    await archive(api, pool, who, [lead_id])
    found = await read(api, who, method, "lead_all_info", lead_id=lead_id, archived_lead="Y")
    assert found == full_row(who, lead_id) + "\n"
    gone = await read(api, who, method, "lead_all_info", lead_id=lead_id)
    assert gone == f"ERROR: lead_all_info LEAD NOT FOUND: {user}|{lead_id}|\n"
    by_phone = await read(
        api, who, method, "lead_all_info", phone_number="9876543210", archived_lead="Y"
    )
    assert by_phone == full_row(who, lead_id) + "\n"
    search = await read(
        api, who, method, "lead_search", phone_number="9876543210", archived_lead="Y"
    )
    assert search == f"9876543210|1|{lead_id}\n"
    assert await read(api, who, method, "lead_search", phone_number="9876543210") == (
        f"9876543210|1|{live}\n"
    )
    field = await read(
        api, who, method, "lead_field_info", lead_id=lead_id, field_name="city", archived_lead="Y"
    )
    assert field == "Pune\n"
    not_archived = await read(
        api, who, method, "lead_field_info", lead_id=live, field_name="city", archived_lead="Y"
    )
    assert not_archived == f"ERROR: lead_field_info LEAD NOT FOUND: {user}|{live}\n"


@METHODS
async def test_another_accounts_lead_is_missing(
    api: Client, pool: asyncpg.Pool, method: str
) -> None:
    """Another account's lead, live or archived, by id or by number: as if it did not exist."""
    who, other = await tenant(api), await tenant(api, "other")
    user = who.username
    theirs = added_id(await add(api, other, "9876543210"))
    archived = added_id(await add(api, other, "9812345678"))
    await archive(api, pool, other, [archived])
    for lead_id, flag in ((theirs, "N"), (archived, "Y")):
        info = await read(api, who, method, "lead_all_info", lead_id=lead_id, archived_lead=flag)
        assert info == f"ERROR: lead_all_info LEAD NOT FOUND: {user}|{lead_id}|\n"
        field = await read(
            api,
            who,
            method,
            "lead_field_info",
            lead_id=lead_id,
            field_name="phone_number",
            archived_lead=flag,
        )
        assert field == f"ERROR: lead_field_info LEAD NOT FOUND: {user}|{lead_id}\n"
    for number, flag in (("9876543210", "N"), ("9812345678", "Y")):
        search = await read(
            api, who, method, "lead_search", phone_number=number, archived_lead=flag
        )
        assert search == f"ERROR: lead_search NO MATCHES FOUND IN THE SYSTEM: |{user}|||{number}\n"
        info = await read(
            api, who, method, "lead_all_info", phone_number=number, archived_lead=flag
        )
        assert info == f"ERROR: lead_all_info LEAD NOT FOUND: {user}||{number}\n"
    # The owner still reads both.
    assert (await read(api, other, method, "lead_search", phone_number="9876543210")) == (
        f"9876543210|1|{theirs}\n"
    )


@METHODS
async def test_a_dnc_marked_lead_reads_dnc_while_marked(api: Client, method: str) -> None:
    """A lead an entry blocks reads DNC in both reads; its own status once the entry goes."""
    who = await tenant(api)
    lead_id = await full_lead(api, who)
    added = await call(
        api,
        who,
        method,
        function="add_dnc_phone",
        phone_number="9876543210",
        campaign_id="SYSTEM_INTERNAL",
    )
    assert added.startswith("SUCCESS"), added
    assert (await native_lead(api, who, lead_id))["status"] == "DNC"
    info = await read(api, who, method, "lead_all_info", lead_id=lead_id)
    assert info == full_row(who, lead_id, "DNC") + "\n"
    status = await read(api, who, method, "lead_field_info", lead_id=lead_id, field_name="status")
    assert status == "DNC\n"
    await call(
        api,
        who,
        method,
        function="delete_dnc_phone",
        phone_number="9876543210",
        campaign_id="SYSTEM_INTERNAL",
    )
    status = await read(api, who, method, "lead_field_info", lead_id=lead_id, field_name="status")
    assert status == "NEW\n"
