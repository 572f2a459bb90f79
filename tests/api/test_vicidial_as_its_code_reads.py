"""Vicidial's non-agent API where `non_agent_api.php` (2.14-202) reads a call differently from
what its documentation suggests: the login before the source, parameters cleaned before any
comparison (Y/N flags keep their capitals only), update_lead's status and call columns, and
batch_update_lead's lead_ids. A CRM written against a real Vicidial parses these."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_flexydial import PASSWORD
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


async def column(api: Client, who: Tenant, lead: int, name: str) -> str:
    """One column of the lead as lead_field_info answers it."""
    answer = await call(api, who, function="lead_field_info", lead_id=lead, field_name=name)
    return answer.removesuffix("\n")


async def test_the_login_is_checked_before_the_source(api: Client) -> None:
    """A bad login with no source is a login error; a good one with a function this route
    does not know is NO FUNCTION SPECIFIED, source or not; a source loses what is not a
    letter or digit before its length is checked."""
    who = await tenant(api)
    bad = await call(api, None, function="add_lead", source="", user=who.username, **{"pass": "x"})
    assert bad == f"ERROR: Login incorrect, please try again: |{who.username}||BAD|\n"
    unknown = await call(api, who, function="list_info", source="")
    assert unknown == "ERROR: NO FUNCTION SPECIFIED\n"
    for source in ("", "a", "a!", "\n", "é"):
        short = await call(api, who, function="add_lead", source=source)
        kept = "a" if source.startswith("a") else ""
        assert short == f"ERROR: Invalid Source - {kept}\nERROR: Invalid Source: |{kept}|\n"


async def test_a_function_name_keeps_its_letters_digits_dashes_and_underscores(
    api: Client,
) -> None:
    """`lead_all_info;` is lead_all_info, as Vicidial strips the rest before it dispatches."""
    who = await tenant(api)
    lead = added_id(await add(api, who, "9876543210"))
    plain = await call(api, who, function="lead_all_info", lead_id=lead)
    assert await call(api, who, function="lead_all_info;", lead_id=lead) == plain


async def test_flags_are_on_for_a_capital_y_only_after_cleaning(api: Client) -> None:
    """Vicidial keeps only A-Z of a Y/N flag, then compares it with Y: `Yes` and ` Y ` are
    on, `y` is off. delete_lead=y updates the lead rather than deleting it; dnc_check=y runs
    no check."""
    who = await tenant(api)
    user = who.username
    lead = added_id(await add(api, who, "9876543210"))
    kept = await call(api, who, function="update_lead", lead_id=lead, delete_lead="y", city="Pune")
    assert kept == f"SUCCESS: update_lead LEAD HAS BEEN UPDATED - {user}|{lead}|1|||\n"
    assert (await native_lead(api, who, lead))["city"] == "Pune"
    response = await api.post("/v1/dnc", json=[{"phone": "9812345678"}], headers=who.native)
    assert response.status == 201
    unchecked = await add(api, who, "9812345678", dnc_check="y")
    assert unchecked.startswith("SUCCESS: add_lead LEAD HAS BEEN ADDED - 9812345678|")
    checked = await add(api, who, "9812345678", dnc_check=" Yes ")
    assert checked.startswith("ERROR: add_lead PHONE NUMBER IN DNC - 9812345678|")
    deleted = await call(api, who, function="update_lead", lead_id=lead, delete_lead="Yes")
    assert deleted == f"SUCCESS: update_lead LEAD HAS BEEN DELETED 0|0 - {user}|{lead}|1|0|0|\n"


async def test_update_lead_sets_status_and_the_call_columns(api: Client) -> None:
    """status (cleaned, six characters at most, NEW the lead's default status), called_count,
    gmt_offset_now and entry_list_id are set by update_lead and batch_update_lead, and read
    back by lead_field_info and lead_all_info; a status-only call is an update."""
    who = await tenant(api)
    user = who.username
    lead = added_id(await add(api, who, "9876543210"))
    other = added_id(await add(api, who, "9812345678"))
    answer = await call(api, who, function="update_lead", lead_id=lead, status="SALE")
    assert answer == f"SUCCESS: update_lead LEAD HAS BEEN UPDATED - {user}|{lead}|1|||\n"
    assert await column(api, who, lead, "status") == "SALE"
    await call(
        api,
        who,
        function="update_lead",
        lead_id=lead,
        status="CALL BACK!",
        called_count="3",
        gmt_offset_now="-5.00",
        entry_list_id="77",
    )
    read = {n: await column(api, who, lead, n) for n in ("status", "called_count")}
    read |= {n: await column(api, who, lead, n) for n in ("gmt_offset_now", "entry_list_id")}
    assert read == {
        "status": "CALLBA",
        "called_count": "3",
        "gmt_offset_now": "-5.00",
        "entry_list_id": "77",
    }
    batch = await call(
        api, who, function="batch_update_lead", lead_ids=f"{lead},{other}", status="DNCL"
    )
    assert batch == (
        f"SUCCESS: batch_update_lead LEADS HAVE BEEN UPDATED - {user}|2|2|{other},{lead}\n"
    )
    assert [await column(api, who, i, "status") for i in (lead, other)] == ["DNCL", "DNCL"]
    await call(api, who, function="update_lead", lead_id=lead, status="NEW")
    assert (await native_lead(api, who, lead))["status"] == "new"
    assert await column(api, who, lead, "status") == "NEW"


async def test_update_lead_inserts_with_its_status(api: Client) -> None:
    """insert_if_not_found's lead takes the call's status, NEW without one."""
    who = await tenant(api)
    sales = who.lists["sales"]
    base: dict[str, Any] = {
        "function": "update_lead",
        "search_method": "PHONE_NUMBER",
        "insert_if_not_found": "Y",
        "phone_code": "91",
        "list_id": sales,
    }
    with_status = await call(api, who, **base, phone_number="9876543210", status="CALLBK")
    lead = int(with_status.split("|")[-3])
    assert await column(api, who, lead, "status") == "CALLBK"
    plain = await call(api, who, **base, phone_number="9812345678")
    assert await column(api, who, int(plain.split("|")[-3]), "status") == "NEW"


@pytest.mark.parametrize("lead_ids", ["1234567890", ",", "99999999999999999999999"])
async def test_batch_update_lead_ids_given_but_matching_nothing(api: Client, lead_ids: str) -> None:
    """lead_ids that hold something, even no id this ledger can hold, are searched: NO
    MATCHES FOUND with them echoed; only an empty one is NO LEADS DEFINED."""
    who = await tenant(api)
    user = who.username
    answer = await call(api, who, function="batch_update_lead", lead_ids=lead_ids, city="x")
    assert (
        answer == f"ERROR: batch_update_lead NO MATCHES FOUND IN THE SYSTEM: |{user}|{lead_ids}\n"
    )
    empty = await call(api, who, function="batch_update_lead", lead_ids="x", city="x")
    assert empty == f"ERROR: batch_update_lead NO LEADS DEFINED - {user}|\n"


async def test_the_password_is_still_read_as_sent(api: Client) -> None:
    """Vicidial cleans `pass`; a ledger user's password is one for every dialect and is read
    as sent (Flexydial's login takes it so), so a password with spaces logs in here too."""
    who = await tenant(api)
    assert " " in PASSWORD
    answer = await add(api, who, "9876543210")
    assert answer.startswith("SUCCESS: add_lead LEAD HAS BEEN ADDED")
