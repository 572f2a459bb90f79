"""Vicidial's non_agent_api.php through the real app: the transport (version, source, login,
unknown functions, GET and POST), add_lead's every answer (list, length, DNC, each duplicate
mode with and without a day suffix), the DNC number functions, and the lead as every other
dialect sees it. Every test ends with `projections verify`."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest

from lead_ledger.api.app import create_app
from lead_ledger.api.keys import CLOCK
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import LeadFields
from lead_ledger.service import vicidial_add_lead
from lead_ledger.service.lead_inserts import NewLead, insert_lead_groups
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.vicidial_duplicates import duplicate_days, duplicate_modes
from lead_ledger.service.vicidial_params import Params
from lead_ledger.service.writer import Context
from lead_ledger.settings import Settings
from tests.api.test_flexydial import ADMIN, PASSWORD, admin_post
from tests.support import Client, advisory_waiters

PATH = "/vicidial/non_agent_api.php"
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def make_client(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> MakeClient:
    """The app, with its clock moved `later` ahead of the real one when asked."""

    async def start(later: timedelta | None = None) -> Client:
        app = create_app(settings, database_url)
        if later is not None:
            app[CLOCK] = lambda: datetime.now(UTC) + later
        return await aiohttp_client(app)

    return start


@pytest.fixture
async def api(make_client: MakeClient) -> Client:
    return await make_client()


class Tenant(msgspec.Struct, frozen=True):
    username: str
    lists: dict[str, int]  # campaign name -> its id, the Vicidial list_id
    native: dict[str, str]


async def tenant(api: Client, name: str = "acme") -> Tenant:
    """An account (region IN) with campaigns sales, second and third, a user and a native key."""
    account = await admin_post(api, "/accounts", {"name": name, "default_region": "IN"})
    base = f"/accounts/{account['id']}"
    lists = {}
    for campaign in ("sales", "second", "third"):
        lists[campaign] = (await admin_post(api, f"{base}/campaigns", {"name": campaign}))["id"]
    username = f"{name}-vici"
    await admin_post(api, f"{base}/users", {"username": username, "password": PASSWORD})
    native = await admin_post(api, f"{base}/credentials", {"api": "native"})
    return Tenant(username, lists, {"Authorization": f"Bearer {native['key']}"})


# Every test of this file runs twice: its calls as GET queries, then as POST forms.
METHOD: dict[str, str] = {"default": "GET"}


@pytest.fixture(autouse=True, params=["GET", "POST"])
def http_method(request: pytest.FixtureRequest) -> Iterator[str]:
    """The method `call` uses by default in this test."""
    METHOD["default"] = request.param
    yield request.param
    METHOD["default"] = "GET"


async def call(api: Client, who: Tenant | None, method: str = "", **params: Any) -> str:
    """One call with the tenant's login and source `test` (by the test's method unless given);
    the body, after checking the transport: HTTP 200, text/plain in UTF-8, every line ending
    in a newline."""
    method = method or METHOD["default"]
    values = {"source": "test", **params}
    if who is not None:
        values = {"user": who.username, "pass": PASSWORD, **values}
    values = {k: str(v) for k, v in values.items()}
    if method == "GET":
        response = await api.get(PATH, params=values)
    else:
        response = await api.post(PATH, data=values)
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert response.charset == "utf-8"
    body = await response.text()
    assert body == "" or body.endswith("\n"), body
    return body


async def add(api: Client, who: Tenant, phone: str, list_name: str = "sales", **more: Any) -> str:
    return await call(
        api, who, function="add_lead", phone_number=phone, list_id=who.lists[list_name], **more
    )


def added_id(answer: str) -> int:
    match = re.fullmatch(
        r"SUCCESS: add_lead LEAD HAS BEEN ADDED - \d+\|\d+\|(\d+)\|[-0-9.]+\|.+\n", answer
    )
    assert match is not None, answer
    return int(match.group(1))


async def native_lead(api: Client, who: Tenant, lead_id: int) -> Any:
    response = await api.get(f"/v1/leads/{lead_id}", headers=who.native)
    assert response.status == 200, await response.text()
    return await response.json()


# --- transport --------------------------------------------------------------------------------


async def test_version_answers_before_any_login(api: Client) -> None:
    """`version` needs no login and no source: Vicidial's fields (version, build, date, epoch,
    daylight saving, the server's offset then and now), each followed by a bar."""
    answer = await call(api, None, function="version", source="")
    match = re.fullmatch(
        r"VERSION: ([^|]+)\|BUILD: ([^|]+)\|DATE: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\|EPOCH: (\d+)"
        r"\|DST: 0\|TZ: 0\.00\|TZNOW: 0\.00\|\n",
        answer,
    )
    assert match is not None, answer
    assert abs(int(match.group(4)) - datetime.now(UTC).timestamp()) < 60


@pytest.mark.parametrize("source", ["", "x"])
async def test_a_short_source_is_two_lines(api: Client, source: str) -> None:
    """Shorter than 2 characters: Vicidial's two lines, once the login is checked."""
    who = await tenant(api)
    answer = await call(api, who, function="add_lead", source=source)
    assert answer == f"ERROR: Invalid Source - {source}\nERROR: Invalid Source: |{source}|\n"


async def test_a_bad_login_never_echoes_the_password(api: Client) -> None:
    """Unknown user or wrong password: the login line with the user, never the password."""
    who = await tenant(api)
    wrong = await call(api, None, function="add_lead", user=who.username, **{"pass": "nope"})
    assert wrong == f"ERROR: Login incorrect, please try again: |{who.username}||BAD|\n"
    unknown = await call(api, None, function="add_lead", user="ghost", **{"pass": PASSWORD})
    assert unknown == "ERROR: Login incorrect, please try again: |ghost||BAD|\n"
    assert "nope" not in wrong


async def test_an_echo_never_breaks_its_line(api: Client) -> None:
    """A user, source, campaign_id or vendor_lead_code sent with line breaks is echoed without
    them: one line per outcome, never a second one a client would read as another (a forged
    `SUCCESS:`)."""
    who = await tenant(api)
    forged = "a\nSUCCESS: x\r"
    login = await call(api, None, function="add_lead", user=forged, **{"pass": "p"})
    assert login == "ERROR: Login incorrect, please try again: |aSUCCESS: x||BAD|\n"
    source = await call(api, who, function="add_lead", source="\n")
    assert source == "ERROR: Invalid Source - \nERROR: Invalid Source: ||\n"
    dnc = await call(
        api, who, function="add_dnc_phone", phone_number="9833300007", campaign_id=forged
    )
    assert dnc.count("\n") == 1, dnc
    assert dnc.startswith("ERROR: add_dnc_phone "), dnc
    search = await call(
        api,
        who,
        function="update_lead",
        search_method="VENDOR_LEAD_CODE",
        vendor_lead_code=forged,
        city="x",
    )
    assert search.count("\n") == 1, search


async def test_repeated_bad_logins_are_locked_out(api: Client, settings: Settings) -> None:
    """Past the username's failure limit: Vicidial's LOCK line, even with the right password."""
    who = await tenant(api)
    for _ in range(settings.login_failures_per_username):
        await call(api, None, function="add_lead", user=who.username, **{"pass": "nope"})
    locked = await call(api, who, function="add_lead")
    assert locked == (
        f"ERROR: Too many login attempts, try again in 15 minutes: |{who.username}|LOCK|\n"
    )


@pytest.mark.parametrize("function", ["", "no_such_function", "ADD_LEAD"])
async def test_an_unknown_function_is_no_function_specified(api: Client, function: str) -> None:
    """After a good login, a function this route does not know."""
    who = await tenant(api)
    assert await call(api, who, function=function) == "ERROR: NO FUNCTION SPECIFIED\n"


async def test_post_form_works_and_the_query_wins(api: Client) -> None:
    """A form body is read like a query; a parameter in both takes the query's value."""
    who = await tenant(api)
    answer = await call(
        api, who, "POST", function="add_lead", phone_number="9876543210", list_id=who.lists["sales"]
    )
    lead_id = added_id(answer)
    form = {
        "source": "test",
        "user": who.username,
        "pass": PASSWORD,
        "function": "add_lead",
        "phone_number": "9812345678",
        "list_id": str(who.lists["sales"]),
    }
    response = await api.post(f"{PATH}?phone_number=9800000000", data=form)
    body = await response.text()
    assert body.startswith("SUCCESS: add_lead LEAD HAS BEEN ADDED - 9800000000|"), body
    assert (await native_lead(api, who, lead_id))["phone_numbers"] == ["9876543210"]


# --- add_lead ------------------------------------------------------------------------------------


async def test_add_lead_maps_every_field_and_answers_the_lead(api: Client) -> None:
    """Success: phone|list|lead|gmt|user; the lead carries the mapped fields (vendor code as
    user_data, the rest of Vicidial's columns in extra) and is one other dialects see."""
    who = await tenant(api)
    answer = await add(
        api,
        who,
        "+91 98765-43210",
        vendor_lead_code="VC-1",
        first_name="Asha",
        last_name="Rao",
        title="Ms",
        alt_phone="9812345678",
        city="Pune",
        state="MH",
        province="West",
        postal_code="411001",
        country_code="IND",
        email="asha@example.com",
        comments="call after 5",
        gender="F",
        date_of_birth="1990-01-02",
        security_phrase="blue",
        source_id="crm",
        owner="team-a",
        rank="5",
        phone_code="91",
    )
    lead_id = added_id(answer)
    assert answer == (
        f"SUCCESS: add_lead LEAD HAS BEEN ADDED - 919876543210|{who.lists['sales']}|{lead_id}"
        f"|5.50|{who.username}\n"
    )
    lead = await native_lead(api, who, lead_id)
    assert lead["phone_numbers"] == ["919876543210", "9812345678"]
    assert lead["dedupe_keys"] == ["+919876543210", "+919812345678"]
    expected = {
        "user_data": "VC-1",
        "first_name": "Asha",
        "last_name": "Rao",
        "title": "Ms",
        "city": "Pune",
        "state": "MH",
        "postal_code": "411001",
        "country": "IND",
        "email": "asha@example.com",
        "comments": "call after 5",
        "priority": 5,
    }
    assert {k: lead[k] for k in expected} == expected
    assert lead["extra"] == {
        "province": "West",
        "gender": "F",
        "date_of_birth": "1990-01-02",
        "security_phrase": "blue",
        "source_id": "crm",
        "owner": "team-a",
        "phone_code": "91",
        "gmt_offset_now": "5.50",
    }


async def test_fields_are_cut_to_vicidials_widths(api: Client) -> None:
    """What MySQL would keep of an over-long value: title 4, first_name 30, state 2."""
    who = await tenant(api)
    lead_id = added_id(
        await add(api, who, "9876543210", title="Doctor", first_name="A" * 40, state="MHX")
    )
    lead = await native_lead(api, who, lead_id)
    assert (lead["title"], lead["first_name"], lead["state"]) == ("Doct", "A" * 30, "MH")


async def test_a_list_that_is_not_the_accounts_is_not_allowed(api: Client) -> None:
    """Another account's campaign, an unknown id, or none (Vicidial's default 999)."""
    who, other = await tenant(api), await tenant(api, "other")
    foreign = other.lists["sales"]
    for list_id, shown in ((foreign, foreign), (987654, 987654), ("", 999)):
        answer = await call(
            api, who, function="add_lead", phone_number="9876543210", list_id=list_id
        )
        assert answer == f"ERROR: add_lead NOT AN ALLOWED LIST ID - 9876543210|{shown}\n"


@pytest.mark.parametrize("phone", ["12345", "12345678901234567", "abc", ",,,,,,"])
async def test_a_number_of_the_wrong_length_is_refused(
    api: Client, pool: asyncpg.Pool, phone: str
) -> None:
    """6 to 16 digits, counted after cleaning (`abc` cleans to nothing); recorded as refused.
    Commas alone (Vicidial keeps them) make no number a lead can be dialled at: the same line."""
    who = await tenant(api)
    cleaned = re.sub(r"[^0-9,]", "", phone)
    answer = await add(api, who, phone)
    assert answer == f"ERROR: add_lead INVALID PHONE NUMBER LENGTH - {cleaned}|{who.username}\n"
    reasons = await pool.fetch(
        "SELECT data->>'reason' AS r FROM events WHERE type = 'LeadRejected'"
    )
    assert [r["r"] for r in reasons] == ["invalid_phone"]


async def test_dnc_checks_answer_and_without_them_the_lead_is_marked(
    api: Client, pool: asyncpg.Pool
) -> None:
    """dnc_check=Y finds the account-wide entry, campaign_dnc_check=Y the campaign's (the
    list's, or the one `campaign_id` names); without them the lead is added and marked DNC."""
    who = await tenant(api)
    response = await api.post(
        "/v1/dnc",
        json=[{"phone": "9876543210"}, {"phone": "9812345678", "campaign": "second"}],
        headers=who.native,
    )
    assert response.status == 201
    refused = await add(api, who, "9876543210", dnc_check="Y")
    assert refused == f"ERROR: add_lead PHONE NUMBER IN DNC - 9876543210|{who.username}\n"
    in_list = await add(api, who, "9812345678", "second", campaign_dnc_check="Y")
    assert in_list == (
        f"ERROR: add_lead PHONE NUMBER IN CAMPAIGN DNC - 9812345678|second|{who.username}\n"
    )
    named = await add(api, who, "9812345678", campaign_dnc_check="Y", campaign_id="second")
    assert named.startswith("ERROR: add_lead PHONE NUMBER IN CAMPAIGN DNC - 9812345678|second|")
    # The campaign check does not look at account-wide entries, nor dnc_check at campaigns'.
    assert (await add(api, who, "9812345678", dnc_check="Y")).startswith("SUCCESS")
    marked = added_id(await add(api, who, "9876543210", campaign_dnc_check="Y"))
    lead = await native_lead(api, who, marked)
    assert (lead["status"], lead["dnc"]) == ("DNC", True)
    scopes = await pool.fetch(
        "SELECT data->>'dnc_scope' AS s FROM events WHERE type = 'LeadRejected' ORDER BY position"
    )
    assert [r["s"] for r in scopes] == ["account", "campaign", "campaign"]
    # AREACODE checks the number as Y does (Vicidial: `== 'Y' or == 'AREACODE'`).
    area = await add(api, who, "9876543210", dnc_check="AREACODE")
    assert area == f"ERROR: add_lead PHONE NUMBER IN DNC - 9876543210|{who.username}\n"
    area = await add(api, who, "9812345678", "second", campaign_dnc_check="AREACODE")
    assert area.startswith("ERROR: add_lead PHONE NUMBER IN CAMPAIGN DNC - 9812345678|second|")


def test_duplicate_modes_are_tested_in_vicidials_order() -> None:
    """Substrings, any case, in Vicidial's order whatever the order written; the day suffix
    is the largest that matches (`21DAY` also holds `1DAY`)."""
    modes = duplicate_modes("dupnamephonesys-DUPCAMP-DUPPHONEALTLIST-DUPTITLEALTPHONECAMP")
    assert [f"DUP{m.kind}{m.scope}" for m in modes] == [
        "DUPCAMP",
        "DUPPHONEALTLIST",
        "DUPTITLEALTPHONECAMP",
        "DUPNAMEPHONESYS",
    ]
    assert duplicate_modes("NONE") == []
    assert [duplicate_days(v) for v in ("DUPLIST", "DUPLIST1DAY", "DUPSYS21DAY", "X360DAY")] == [
        None,
        1,
        21,
        360,
    ]


async def test_duplicate_phone_in_list_campaign_and_system(api: Client) -> None:
    """DUPLIST finds the list's lead, DUPCAMP answers CAMPAIGN LISTS (a campaign is its one
    list), DUPSYS any campaign of the account, never another account's; every spelling of
    the number is one number."""
    who, other = await tenant(api), await tenant(api, "other")
    first = added_id(await add(api, who, "9876543210"))
    added_id(await add(api, other, "9812345678"))
    sales = who.lists["sales"]
    assert await add(api, who, "+919876543210", duplicate_check="DUPLIST") == (
        f"ERROR: add_lead DUPLICATE PHONE NUMBER IN LIST - 919876543210|{sales}|{first}\n"
    )
    assert await add(api, who, "09876543210", duplicate_check="DUPCAMP") == (
        "ERROR: add_lead DUPLICATE PHONE NUMBER IN CAMPAIGN LISTS -"
        f" 09876543210|{sales}|{first}|{sales}\n"
    )
    second = who.lists["second"]
    assert (await add(api, who, "9876543210", "second", duplicate_check="DUPLIST")).startswith(
        "SUCCESS"
    )
    assert await add(api, who, "9876543210", "third", duplicate_check="DUPSYS") == (
        f"ERROR: add_lead DUPLICATE PHONE NUMBER IN SYSTEM - 9876543210|{who.lists['third']}"
        f"|{first}|{sales}\n"
    )
    assert (await add(api, who, "9812345678", duplicate_check="DUPSYS")).startswith("SUCCESS")
    assert second != sales


async def test_a_day_suffix_counts_only_recent_leads(make_client: MakeClient) -> None:
    """With the clock two days on, DUPLIST1DAY finds nothing and DUPLIST3DAY the lead."""
    api = await make_client()
    who = await tenant(api)
    first = added_id(await add(api, who, "9876543210"))
    assert (await add(api, who, "9876543210", duplicate_check="DUPLIST1DAY")).startswith(
        "ERROR: add_lead DUPLICATE PHONE NUMBER IN LIST"
    )
    later = await make_client(timedelta(days=2))
    assert (await add(later, who, "9876543210", duplicate_check="DUPLIST1DAY")).startswith(
        "SUCCESS"
    )
    assert await add(later, who, "9876543210", duplicate_check="DUPSYS3DAY") == (
        f"ERROR: add_lead DUPLICATE PHONE NUMBER IN SYSTEM - 9876543210|{who.lists['sales']}"
        f"|{first}|{who.lists['sales']}\n"
    )


async def test_duplicate_phone_or_alt_says_which_matched(api: Client) -> None:
    """DUPPHONEALT* match the new number against a lead's phone or its alt phone."""
    who = await tenant(api)
    sales = who.lists["sales"]
    lead = added_id(await add(api, who, "9876543210", alt_phone="9812345678"))
    assert await add(api, who, "9812345678", duplicate_check="DUPPHONEALTLIST") == (
        f"ERROR: add_lead DUPLICATE PHONE NUMBER IN LIST - 9812345678|{sales}|{lead}|ALT\n"
    )
    assert await add(api, who, "9876543210", duplicate_check="DUPPHONEALTCAMP") == (
        "ERROR: add_lead DUPLICATE PHONE NUMBER IN CAMPAIGN LISTS -"
        f" 9876543210|{sales}|{lead}|{sales}|PHONE\n"
    )
    third = who.lists["third"]
    assert await add(api, who, "9812345678", "third", duplicate_check="DUPPHONEALTSYS") == (
        "ERROR: add_lead DUPLICATE PHONE NUMBER IN SYSTEM -"
        f" 9812345678|{third}|{lead}|{sales}|ALT\n"
    )
    # DUPLIST compares phone numbers only: the alt phone is no duplicate there.
    assert (await add(api, who, "9812345678", duplicate_check="DUPLIST")).startswith("SUCCESS")


async def test_duplicate_title_alt_phone_and_name_phone(api: Client) -> None:
    """DUPTITLEALTPHONE*: same title and alt phone; DUPNAMEPHONE*: same first and last name
    and phone; a different title or name is no duplicate."""
    who = await tenant(api)
    sales, third = who.lists["sales"], who.lists["third"]
    lead = added_id(
        await add(
            api,
            who,
            "9876543210",
            title="Mr",
            alt_phone="9812345678",
            first_name="Ravi",
            last_name="K",
        )
    )
    assert await add(
        api,
        who,
        "9800000001",
        title="Mr",
        alt_phone="9812345678",
        duplicate_check="DUPTITLEALTPHONELIST",
    ) == (f"ERROR: add_lead DUPLICATE TITLE ALT_PHONE IN LIST - Mr|9812345678|{sales}|{lead}\n")
    assert await add(
        api,
        who,
        "9800000001",
        "third",
        title="Mr",
        alt_phone="9812345678",
        duplicate_check="DUPTITLEALTPHONESYS",
    ) == (
        "ERROR: add_lead DUPLICATE TITLE ALT_PHONE IN SYSTEM -"
        f" Mr|9812345678|{third}|{lead}|{sales}\n"
    )
    assert (
        await add(
            api,
            who,
            "9800000002",
            title="Dr",
            alt_phone="9812345678",
            duplicate_check="DUPTITLEALTPHONELIST",
        )
    ).startswith("SUCCESS")
    assert await add(
        api, who, "9876543210", first_name="Ravi", last_name="K", duplicate_check="DUPNAMEPHONECAMP"
    ) == (
        "ERROR: add_lead DUPLICATE NAME PHONE IN CAMPAIGN LISTS -"
        f" Ravi|K|9876543210|{sales}|{lead}|{sales}\n"
    )
    assert (
        await add(
            api,
            who,
            "9876543210",
            first_name="Ravi",
            last_name="M",
            duplicate_check="DUPNAMEPHONELIST",
        )
    ).startswith("SUCCESS")


async def test_refusals_are_recorded_with_the_lead_they_duplicate(
    api: Client, pool: asyncpg.Pool
) -> None:
    """A duplicate is a LeadRejected naming the lead found, by the vicidial dialect's user."""
    who = await tenant(api)
    first = added_id(await add(api, who, "9876543210"))
    await add(api, who, "9876543210", duplicate_check="DUPLIST")
    row = await pool.fetchrow("SELECT data, metadata FROM events WHERE type = 'LeadRejected'")
    assert row is not None
    data, metadata = msgspec.json.decode(row["data"]), msgspec.json.decode(row["metadata"])
    assert (data["reason"], data["existing_lead_ids"]) == ("duplicate", [first])
    assert metadata["actor"]["dialect"] == "vicidial"
    assert metadata["actor"]["username"] == who.username


# --- DNC numbers ---------------------------------------------------------------------------------


async def test_add_and_delete_dnc_phone(api: Client) -> None:
    """SYSTEM_INTERNAL is the account-wide list, a name a campaign's; adding twice, deleting
    what is not there and missing fields each have their line; the registry follows."""
    who = await tenant(api)
    user = who.username

    async def dnc(function: str, phone: str, campaign: str) -> str:
        return await call(api, who, function=function, phone_number=phone, campaign_id=campaign)

    assert await dnc("add_dnc_phone", "9876543210", "SYSTEM_INTERNAL") == (
        f"SUCCESS: add_dnc_phone DNC NUMBER HAS BEEN ADDED - {user}|9876543210|SYSTEM_INTERNAL\n"
    )
    assert await dnc("add_dnc_phone", "9876543210", "SYSTEM_INTERNAL") == (
        f"ERROR: add_dnc_phone DNC NUMBER ALREADY EXISTS: |{user}|9876543210|SYSTEM_INTERNAL\n"
    )
    assert (await dnc("add_dnc_phone", "9876543210", "sales")).startswith(
        "SUCCESS: add_dnc_phone DNC NUMBER HAS BEEN ADDED"
    )
    assert await dnc("add_dnc_phone", "12345", "sales") == (
        f"ERROR: add_dnc_phone YOU MUST USE ALL REQUIRED FIELDS: |{user}|12345|sales\n"
    )
    check = await api.get(
        "/v1/dnc/check", params={"phone": "9876543210", "campaign": "sales"}, headers=who.native
    )
    assert len((await check.json())["entries"]) == 2
    assert await dnc("delete_dnc_phone", "+919876543210", "sales") == (
        f"SUCCESS: delete_dnc_phone DNC NUMBER HAS BEEN DELETED - {user}|919876543210|sales\n"
    )
    assert await dnc("delete_dnc_phone", "9876543210", "sales") == (
        f"ERROR: delete_dnc_phone DNC NUMBER DOES NOT EXIST: |{user}|9876543210|sales\n"
    )
    assert await dnc("delete_dnc_phone", "9876543210", "x") == (
        f"ERROR: delete_dnc_phone YOU MUST USE ALL REQUIRED FIELDS: |{user}|9876543210|x\n"
    )
    check = await api.get("/v1/dnc/check", params={"phone": "9876543210"}, headers=who.native)
    assert (await check.json())["blocked"] is True


# --- update_lead and batch_update_lead -------------------------------------------------------


async def update(api: Client, who: Tenant, **params: Any) -> str:
    return await call(api, who, function="update_lead", **params)


async def test_update_lead_by_id_changes_only_what_differs(api: Client, pool: asyncpg.Pool) -> None:
    """A LeadUpdated with the changed fields only; the same values again change no row (0);
    the phone number is a search value unless update_phone_number=Y."""
    who = await tenant(api)
    lead = added_id(await add(api, who, "9876543210", first_name="Asha", city="Pune"))
    answer = await update(api, who, lead_id=lead, first_name="Asha", city="Goa", province="West")
    assert answer == f"SUCCESS: update_lead LEAD HAS BEEN UPDATED - {who.username}|{lead}|1|||\n"
    again = await update(api, who, lead_id=lead, city="Goa")
    assert again == f"SUCCESS: update_lead LEAD HAS BEEN UPDATED - {who.username}|{lead}|0|||\n"
    seen = await native_lead(api, who, lead)
    assert (seen["first_name"], seen["city"], seen["extra"]["province"]) == ("Asha", "Goa", "West")
    changes = await pool.fetch(
        "SELECT data FROM events WHERE type = 'LeadUpdated' AND stream_id = $1", f"lead-{lead}"
    )
    assert len(changes) == 1
    assert [c[0] for c in msgspec.json.decode(changes[0]["data"])["changes"]] == ["city", "extra"]
    await update(api, who, lead_id=lead, phone_number="9812345678")
    assert (await native_lead(api, who, lead))["phone_numbers"] == ["9876543210"]
    await update(api, who, lead_id=lead, phone_number="9812345678", update_phone_number="Y")
    assert (await native_lead(api, who, lead))["phone_numbers"] == ["9812345678"]
    # Commas alone are no number to set (as an empty one is not); the other fields still are.
    commas = await update(
        api, who, lead_id=lead, phone_number=",,,,,,", update_phone_number="Y", city="Agra"
    )
    assert commas == f"SUCCESS: update_lead LEAD HAS BEEN UPDATED - {who.username}|{lead}|1|||\n"
    seen = await native_lead(api, who, lead)
    assert (seen["phone_numbers"], seen["city"]) == (["9812345678"], "Agra")


async def test_update_lead_blank_empties_fields_and_the_alt_phone(api: Client) -> None:
    """`--BLANK--` empties a canonical field, an extra one, and drops the alt phone."""
    who = await tenant(api)
    lead = added_id(
        await add(api, who, "9876543210", alt_phone="9812345678", city="Pune", owner="team")
    )
    await update(api, who, lead_id=lead, city="--BLANK--", owner="--BLANK--", alt_phone="--BLANK--")
    seen = await native_lead(api, who, lead)
    assert (seen["city"], seen["extra"]["owner"], seen["phone_numbers"]) == (
        None,
        None,
        ["9876543210"],
    )


async def test_update_lead_searches_vendor_code_then_phone_newest_first(api: Client) -> None:
    """VENDOR_LEAD_CODE and PHONE_NUMBER combine; records=2 updates the two newest, one line
    each; LIST limits the search to list_id."""
    who = await tenant(api)
    old = added_id(await add(api, who, "9876543210"))
    mid = added_id(await add(api, who, "9876543210", "second"))
    new = added_id(await add(api, who, "9876543210"))
    coded = added_id(await add(api, who, "9800000001", vendor_lead_code="VC-9"))
    both = "VENDOR_LEAD_CODE_PHONE_NUMBER"
    by_code = await update(api, who, search_method=both, vendor_lead_code="VC-9", comments="x")
    assert by_code == f"SUCCESS: update_lead LEAD HAS BEEN UPDATED - {who.username}|{coded}|1|||\n"
    by_phone = await update(
        api, who, search_method=both, phone_number="9876543210", records=2, comments="y"
    )
    assert by_phone == (
        f"SUCCESS: update_lead LEAD HAS BEEN UPDATED - {who.username}|{new}|1|||\n"
        f"SUCCESS: update_lead LEAD HAS BEEN UPDATED - {who.username}|{mid}|1|||\n"
    )
    in_list = await update(
        api,
        who,
        search_method="PHONE_NUMBER",
        phone_number="+919876543210",
        search_location="LIST",
        list_id=who.lists["second"],
        comments="z",
    )
    assert in_list == f"SUCCESS: update_lead LEAD HAS BEEN UPDATED - {who.username}|{mid}|1|||\n"
    assert (await native_lead(api, who, old))["comments"] is None


async def test_update_lead_finds_a_jtel_contact_by_its_user_data(api: Client) -> None:
    """A jtel contact's UserData is a Vicidial vendor_lead_code: one lead, every dialect."""
    who = await tenant(api)
    account = (await (await api.get("/v1/admin/accounts", headers=ADMIN)).json())["accounts"][0]
    jtel = await admin_post(api, f"/accounts/{account['id']}/credentials", {"api": "jtel"})
    response = await api.post(
        f"/rest/v1.0/{account['id']}/dialler/contacts/import",
        json={
            "DiallerCampaignsName": "sales",
            "Name": "Asha",
            "UserData": "U-7",
            "PhoneNumber1": "+919876543210",
        },
        headers={"Authorization": f"Bearer {jtel['key']}"},
    )
    assert response.status == 200, await response.text()
    contact_id = (await response.json())["records"][0]["ID"]
    answer = await update(
        api, who, search_method="VENDOR_LEAD_CODE", vendor_lead_code="U-7", city="Pune"
    )
    assert answer == (
        f"SUCCESS: update_lead LEAD HAS BEEN UPDATED - {who.username}|{contact_id}|1|||\n"
    )


async def test_update_lead_delete_no_update_and_not_found(api: Client) -> None:
    """delete_lead=Y deletes (reason api); no_update=Y only reports; a missing or another
    account's lead is NO MATCHES; no usable search value is NO VALID SEARCH METHOD."""
    who, other = await tenant(api), await tenant(api, "other")
    user = who.username
    lead = added_id(await add(api, who, "9876543210", vendor_lead_code="VC-1"))
    foreign = added_id(await add(api, other, "9876543210"))
    assert await update(api, who, lead_id=lead, no_update="Y") == (
        f"NOTICE: update_lead LEADS FOUND IN THE SYSTEM: |{user}|{lead}|||{who.lists['sales']}|0\n"
    )
    assert await update(api, who, lead_id=foreign, city="x") == (
        f"ERROR: update_lead NO MATCHES FOUND IN THE SYSTEM: |{user}|{foreign}||\n"
    )
    assert await update(api, who, lead_id=foreign, no_update="Y") == (
        f"NOTICE: update_lead NO MATCHES FOUND IN THE SYSTEM: |{user}|{foreign}||\n"
    )
    assert await update(api, who, search_method="VENDOR_LEAD_CODE") == (
        f"ERROR: update_lead NO VALID SEARCH METHOD - {user}|VENDOR_LEAD_CODE|||\n"
    )
    assert await update(api, who, lead_id=lead) == ""  # found, nothing to set: no line
    assert await update(api, who, lead_id=lead, delete_lead="Y", city="ignored") == (
        f"SUCCESS: update_lead LEAD HAS BEEN DELETED 0|0 - {user}|{lead}|1|0|0|\n"
    )
    response = await api.get(f"/v1/leads/{lead}", headers=who.native)
    assert response.status == 404


async def test_update_lead_inserts_when_not_found(api: Client) -> None:
    """insert_if_not_found=Y: the NOTICE, then the lead added (phone_code and list_id
    required, the list the account's)."""
    who = await tenant(api)
    user, sales = who.username, who.lists["sales"]
    base = {
        "search_method": "PHONE_NUMBER",
        "phone_number": "9876543210",
        "insert_if_not_found": "Y",
    }
    notice = f"NOTICE: update_lead NO MATCHES FOUND IN THE SYSTEM: |{user}||VC-2|9876543210\n"
    answer = await update(api, who, **base, vendor_lead_code="VC-2", phone_code="91", list_id=sales)
    lead = int(answer.split("|")[-3])
    assert answer == (
        notice
        + f"SUCCESS: update_lead LEAD HAS BEEN ADDED - 9876543210|{sales}|{lead}|5.50|{user}\n"
    )
    assert (await native_lead(api, who, lead))["user_data"] == "VC-2"
    missing_code = await update(api, who, **{**base, "phone_number": "9800000000"}, list_id=sales)
    assert missing_code.endswith(
        f"ERROR: update_lead INVALID DATA FOR LEAD INSERTION - {user}|9800000000||{sales}|Y\n"
    )
    commas = await update(
        api, who, **{**base, "phone_number": ",,,,,,"}, phone_code="91", list_id=sales
    )
    assert commas.endswith(
        f"ERROR: update_lead INVALID DATA FOR LEAD INSERTION - {user}|,,,,,,|91|{sales}|Y\n"
    )
    foreign_list = await update(
        api, who, **{**base, "phone_number": "9800000000"}, phone_code="91", list_id=999999
    )
    assert foreign_list.endswith(
        "ERROR: update_lead NOT AN ALLOWED LIST ID, INSERT - 9800000000|999999\n"
    )


async def test_update_to_a_blocked_number_marks_the_lead(api: Client) -> None:
    """Vicidial's update has no DNC check: the lead takes the number and reads DNC."""
    who = await tenant(api)
    lead = added_id(await add(api, who, "9876543210"))
    response = await api.post("/v1/dnc", json=[{"phone": "9812345678"}], headers=who.native)
    assert response.status == 201
    await update(api, who, lead_id=lead, alt_phone="9812345678")
    seen = await native_lead(api, who, lead)
    assert (seen["phone_numbers"], seen["status"]) == (["9876543210", "9812345678"], "DNC")


async def test_records_and_rank_are_read_by_their_ascii_digits_whatever_else_they_hold(
    api: Client,
) -> None:
    """`records` keeps its ASCII digits (a superscript ² is none: the default), however many
    zeros lead them or however large; a rank in other digits is no rank. Never an error."""
    who = await tenant(api)
    user = who.username
    plain = added_id(await add(api, who, "9876543210"))
    newer = added_id(await add(api, who, "9876543210", "second"))
    for rank in ("²", "-²", "0" * 5000 + "7"):
        ranked = added_id(await add(api, who, "9812345678", rank=rank))
        lead, unranked = await native_lead(api, who, ranked), await native_lead(api, who, plain)
        assert lead["priority"] == unranked["priority"]

    def updated(*changed: tuple[int, int]) -> str:
        reason = "SUCCESS: update_lead LEAD HAS BEEN UPDATED"
        return "".join(f"{reason} - {user}|{lead}|{n}|||\n" for lead, n in changed)

    search = {"search_method": "PHONE_NUMBER", "phone_number": "9876543210"}
    assert await update(api, who, **search, records="²", comments="a") == updated((newer, 1))
    assert await update(api, who, **search, records="0" * 5000 + "2", comments="b") == (
        updated((newer, 1), (plain, 1))
    )
    assert await update(api, who, **search, records="1" + "0" * 5000, comments="b") == (
        updated((newer, 0), (plain, 0))
    )
    ids = f"{plain},{newer}"
    for records in ("²", "9" * 5000):
        assert await call(
            api,
            who,
            function="batch_update_lead",
            lead_ids=ids,
            records=records,
            city=f"c{len(records)}",
        ) == (f"SUCCESS: batch_update_lead LEADS HAVE BEEN UPDATED - {user}|2|2|{newer},{plain}\n")


async def test_batch_update_lead(api: Client) -> None:
    """The account's leads among lead_ids, highest id first, up to records; rows changed,
    found, and their ids; none given, none found, nothing to set."""
    who, other = await tenant(api), await tenant(api, "other")
    user = who.username
    first = added_id(await add(api, who, "9876543210", city="Goa"))
    second = added_id(await add(api, who, "9812345678"))
    foreign = added_id(await add(api, other, "9800000000"))
    ids = f"{first},{second},{foreign},1234567890"
    answer = await call(api, who, function="batch_update_lead", lead_ids=ids, city="Goa")
    assert answer == (
        f"SUCCESS: batch_update_lead LEADS HAVE BEEN UPDATED - {user}|1|2|{second},{first}\n"
    )
    limited = await call(
        api, who, function="batch_update_lead", lead_ids=ids, records=1, city="Pune"
    )
    assert limited == f"SUCCESS: batch_update_lead LEADS HAVE BEEN UPDATED - {user}|1|1|{second}\n"
    assert await call(api, who, function="batch_update_lead", lead_ids="") == (
        f"ERROR: batch_update_lead NO LEADS DEFINED - {user}|\n"
    )
    assert await call(api, who, function="batch_update_lead", lead_ids=str(foreign), city="x") == (
        f"ERROR: batch_update_lead NO MATCHES FOUND IN THE SYSTEM: |{user}|{foreign}\n"
    )
    assert await call(api, who, function="batch_update_lead", lead_ids=str(first)) == ""
    assert (await native_lead(api, who, first))["city"] == "Goa"


async def test_lists_of_one_vicidial_campaign_are_searched_together(api: Client) -> None:
    """Campaigns naming one `vicidial_campaign` are its lists: DUPCAMP and update_lead's
    CAMPAIGN location search them all, and no list outside it."""
    who = await tenant(api)
    account = (await (await api.get("/v1/admin/accounts", headers=ADMIN)).json())["accounts"][0]
    for name in ("sales", "second"):
        response = await api.patch(
            f"/v1/admin/accounts/{account['id']}/campaigns/{name}",
            json={"vicidial_campaign": "TESTCAMP"},
            headers=ADMIN,
        )
        assert response.status == 200, await response.text()
        assert (await response.json())["vicidial_campaign"] == "TESTCAMP"
    sales, second, third = (who.lists[n] for n in ("sales", "second", "third"))
    lead = added_id(await add(api, who, "9876543210"))
    assert await add(api, who, "9876543210", "second", duplicate_check="DUPCAMP") == (
        "ERROR: add_lead DUPLICATE PHONE NUMBER IN CAMPAIGN LISTS -"
        f" 9876543210|{second}|{lead}|{sales}\n"
    )
    assert (await add(api, who, "9876543210", "third", duplicate_check="DUPCAMP")).startswith(
        "SUCCESS"
    )
    found = await update(
        api,
        who,
        search_method="PHONE_NUMBER",
        phone_number="9876543210",
        search_location="CAMPAIGN",
        list_id=second,
        records=5,
        comments="grouped",
    )
    assert found == f"SUCCESS: update_lead LEAD HAS BEEN UPDATED - {who.username}|{lead}|1|||\n"
    assert third != sales


async def test_concurrent_adds_of_one_number_let_one_in(api: Client, pool: asyncpg.Pool) -> None:
    """Ten calls at once with DUPLIST (decided together in groups): one lead is added and the
    nine others name it as the duplicate, whether it was added in their group or before."""
    who = await tenant(api)
    answers = await asyncio.gather(
        *(add(api, who, "9876543210", duplicate_check="DUPLIST") for _ in range(10))
    )
    added = [a for a in answers if a.startswith("SUCCESS")]
    assert len(added) == 1, answers
    lead = added_id(added[0])
    duplicate = (
        f"ERROR: add_lead DUPLICATE PHONE NUMBER IN LIST - 9876543210|{who.lists['sales']}|{lead}\n"
    )
    assert sorted(answers) == sorted([added[0], *[duplicate] * 9])
    rejected = await pool.fetch(
        "SELECT data->'existing_lead_ids' AS ids FROM events WHERE type = 'LeadRejected'"
    )
    assert [msgspec.json.decode(r["ids"]) for r in rejected] == [[lead]] * 9


async def test_a_group_sees_the_leads_its_earlier_calls_add(
    api: Client, pool: asyncpg.Pool
) -> None:
    """Three calls decided in one group: the second finds the first's new lead (DUPLIST,
    named by its id once written), the third (another number) is added."""
    who = await tenant(api)
    account_id = await pool.fetchval("SELECT account_id FROM accounts WHERE name = 'acme'")
    now = datetime.now(UTC)
    params = {"list_id": str(who.lists["sales"]), "duplicate_check": "DUPLIST"}

    def call_of(phone: str) -> tuple[Context, vicidial_add_lead.Request]:
        values = Params({**params, "phone_number": phone})
        ctx = Context(actor=Actor(dialect="vicidial", account_id=account_id), request_id=phone)
        return ctx, vicidial_add_lead.request_of(values, who.username, now)

    calls = [call_of("9876543210"), call_of("+919876543210"), call_of("9812345678")]
    async with pool.acquire() as conn:
        first, second, third = await vicidial_add_lead.add_leads(conn, account_id, calls)
    lead = added_id(first[0] + "\n")
    assert second == [
        f"ERROR: add_lead DUPLICATE PHONE NUMBER IN LIST - 919876543210|{who.lists['sales']}|{lead}"
    ]
    assert third[0].startswith("SUCCESS: add_lead LEAD HAS BEEN ADDED - 9812345678|")


@pytest.mark.parametrize(
    "body",
    [
        b"function=add_lead&source=test&first_name=%FF%FE",
        b"function=add_lead&source=test&first_name=\xff\xfe",
        b"function=add_lead&source=te%00st&user=%00&pass=%00",
    ],
)
async def test_hostile_form_bodies_get_a_line_not_a_failure(api: Client, body: bytes) -> None:
    """Bytes that are not UTF-8, and NULs, in a form: an answer line, HTTP 200, never a 500."""
    response = await api.post(
        PATH, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status == 200
    text = await response.text()
    assert text.startswith("ERROR: "), text
    assert "An error has occurred" not in text


async def test_a_multipart_part_in_a_charset_nobody_knows_gets_a_line(api: Client) -> None:
    """A form part whose charset Python does not know: the form has no fields, and the answer
    is a line, never an internal error."""
    body = (
        b'--b\r\nContent-Disposition: form-data; name="function"\r\n'
        b"Content-Type: text/plain; charset=bogus\r\n\r\nversion\r\n--b--\r\n"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    response = await api.post(PATH, data=body, headers=headers)
    assert response.status == 200
    text = await response.text()
    assert text.startswith("ERROR: "), text
    assert "An error has occurred" not in text


# Each mode: the lead it finds, the call that finds it, and the start of the refusal.
_EXISTING: dict[str, dict[str, str]] = {
    "": {"phone_number": "9876543210"},
    "PHONEALT": {"phone_number": "9800000001", "alt_phone": "9876543210"},
    "TITLEALTPHONE": {"phone_number": "9800000001", "title": "Mr", "alt_phone": "9812345678"},
    "NAMEPHONE": {"phone_number": "9876543210", "first_name": "Ravi", "last_name": "K"},
}
_NEW: dict[str, dict[str, str]] = {
    "": {"phone_number": "9876543210"},
    "PHONEALT": {"phone_number": "9876543210"},
    "TITLEALTPHONE": {"phone_number": "9800000002", "title": "Mr", "alt_phone": "9812345678"},
    "NAMEPHONE": {"phone_number": "9876543210", "first_name": "Ravi", "last_name": "K"},
}
_REASON = {
    "": "PHONE NUMBER",
    "PHONEALT": "PHONE NUMBER",
    "TITLEALTPHONE": "TITLE ALT_PHONE",
    "NAMEPHONE": "NAME PHONE",
}
_WHERE = {"LIST": "IN LIST", "CAMP": "IN CAMPAIGN LISTS", "SYS": "IN SYSTEM"}


@pytest.mark.parametrize("kind", ["", "PHONEALT", "TITLEALTPHONE", "NAMEPHONE"])
@pytest.mark.parametrize("scope", ["LIST", "CAMP", "SYS"])
async def test_every_duplicate_mode_with_and_without_a_day_suffix(
    make_client: MakeClient, kind: str, scope: str
) -> None:
    """Each of the twelve modes finds its lead (SYS from another list); with the clock two
    days on, its `1DAY` form finds nothing and its `3DAY` form finds the lead again."""
    api = await make_client()
    who = await tenant(api)
    mode = f"DUP{kind}{scope}"
    target = "third" if scope == "SYS" else "sales"
    expected = f"ERROR: add_lead DUPLICATE {_REASON[kind]} {_WHERE[scope]} - "

    async def try_add(client: Client, check: str) -> str:
        return await call(
            client,
            who,
            function="add_lead",
            list_id=who.lists[target],
            duplicate_check=check,
            **_NEW[kind],
        )

    lead = added_id(
        await call(api, who, function="add_lead", list_id=who.lists["sales"], **_EXISTING[kind])
    )
    found = await try_add(api, mode)
    assert found.startswith(expected), found
    assert f"|{lead}" in found
    later = await make_client(timedelta(days=2))
    assert (await try_add(later, f"{mode}1DAY")).startswith("SUCCESS"), mode
    assert (await try_add(later, f"{mode}3DAY")).startswith(expected)


async def test_dupsys_finds_a_lead_of_a_list_created_while_it_waits(
    api: Client, pool: asyncpg.Pool
) -> None:
    """A DUPSYS add_lead reads the account's lists and waits for its list's lock; meanwhile a
    list is created and a writer puts the number into it, still uncommitted when the call gets
    its lock: the call must lock that list too (so it waits for the writer) and search it, and
    answers DUPLICATE PHONE NUMBER IN SYSTEM with the writer's lead."""
    who = await tenant(api)
    sales = who.lists["sales"]
    account_id = await pool.fetchval(
        "SELECT account_id FROM campaigns WHERE campaign_id = $1", sales
    )
    ctx = Context(actor=Actor(dialect="native", account_id=account_id), request_id="t")
    lead = NewLead(
        fields=LeadFields(phone_numbers=["9876543210"]),
        ctx=ctx,
        check_duplicates=False,
        rejections_stream="request-fresh",
    )
    async with pool.acquire() as holder, pool.acquire() as writer:
        busy = AsyncExitStack()
        async with write_transaction(holder, campaigns=[sales]):
            adding = asyncio.create_task(add(api, who, "9876543210", duplicate_check="DUPSYS"))
            await advisory_waiters(pool, 1)
            path = f"/accounts/{account_id}/campaigns"
            fresh = (await admin_post(api, path, {"name": "fresh"}))["id"]
            await busy.enter_async_context(write_transaction(writer, campaigns=[fresh]))
            result = await insert_lead_groups(writer, account_id=account_id, groups={fresh: [lead]})
        await asyncio.wait({adding}, timeout=1.0)
        await busy.aclose()
    (existing,) = result[fresh].inserted.values()
    found = f"9876543210|{sales}|{existing}|{fresh}"
    assert await adding == f"ERROR: add_lead DUPLICATE PHONE NUMBER IN SYSTEM - {found}\n"
