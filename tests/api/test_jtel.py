"""The jtel dialler contacts API through the real app and PostgreSQL (seed 004, VENDOR-APIS D)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from openapi_spec_validator import validate

from lead_ledger.api import openapi
from lead_ledger.api.app import create_app
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import ExtraValue, LeadFields
from lead_ledger.projections.rebuild import verify
from lead_ledger.service.lead_inserts import insert_leads
from lead_ledger.service.leads import archive_leads, delete_leads
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context
from lead_ledger.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.support import Client, advisory_waiters

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
IMPORT_PATH = "/rest/v1.0/{ClientsID}/dialler/contacts/import"
OVERWRITE = "?overwriteDuplicates=true"
INTEGER = "an integer is required"

# Seed 004's "all fields" example, with real phone numbers in place of the placeholders.
SEED_CONTACT: dict[str, Any] = {
    "RandomSortOrder": None,
    "UserData": "testUserData",
    "Client": "Client",
    "Service": "Service",
    "ReferenceNumber": "ReferenceNumber",
    "Name": "Name",
    "FirstName": "FirstName",
    "Salutation": "Salutation",
    "Title": "Title",
    "Company": "Company",
    "Address": "Address",
    "PostalCode": "PostalCode",
    "City": "City",
    "Country": "Country",
    "AccountOwner": "AccountOwner",
    "AccountBank": "AccountBank",
    "AccountNationalBankCode": "AccountNationalBankCode",
    "AccountBIC": "AccountBIC",
    "AccountNumber": "AccountNumber",
    "AccountIBAN": "AccountIBAN",
    "Amount": 0.0,
    "PhoneNumber1": "+4930123451",
    "PhoneNumber2": "+4930123452",
    "PhoneNumber3": "+4930123453",
    "PhoneNumber4": "+4930123454",
    "PhoneNumber5": "+4930123455",
    "PhoneNumber6": "+4930123456",
    "FaxNumber": "FaxNumber",
    "Email": "Email",
    "Website": "Website",
    "Comment": "Comment",
    "ReservedUsersUID": "ReservedUsersUID",
    "FollowUpUsersUID": "FollowUpUsersUID",
    "FollowUpDateTime": None,
    "dtBeginDate": "2020-01-01T00:00:00",
    "dtEndDate": "2020-03-01T00:00:00",
    "Manufacturer": "Manufacturer",
    "Model": "Model",
    "Tag": "Tag",
    "ExternalSystemLink": "http://test.external.link/",
}
RUNTIME_NAMES = [
    "dtNextTry",
    "LastAcdAgentEndReasonsID",
    "bLastResultMailbox",
    *(f"bPhoneNumber{n}Invalid" for n in range(1, 7)),
    *(f"PhoneNumber{n}LastAcdAgentEndReasonsID" for n in range(1, 7)),
    *(f"nPhoneNumber{n}LastCause" for n in range(1, 7)),
]


@pytest.fixture
async def api(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    """The real app with the jtel routes, on its own fresh database."""
    return await aiohttp_client(create_app(settings, database_url))


@dataclass
class Tenant:
    account_id: int
    key: str
    native_key: str
    campaigns: dict[str, int]

    @property
    def base(self) -> str:
        return f"/rest/v1.0/{self.account_id}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def admin_post(api: Client, path: str, body: dict[str, Any]) -> Any:
    response = await api.post(f"/v1/admin{path}", json=body, headers=ADMIN)
    assert response.status == 201, await response.text()
    return await response.json()


async def make_tenant(api: Client, name: str, region: str, campaigns: list[str]) -> Tenant:
    account = await admin_post(api, "/accounts", {"name": name, "default_region": region})
    account_id = account["id"]
    key = (await admin_post(api, f"/accounts/{account_id}/credentials", {"api": "jtel"}))["key"]
    native = await admin_post(api, f"/accounts/{account_id}/credentials", {"api": "native"})
    ids: dict[str, int] = {}
    for campaign in campaigns:
        created = await admin_post(api, f"/accounts/{account_id}/campaigns", {"name": campaign})
        ids[campaign] = created["id"]
    return Tenant(account_id, key, native["key"], ids)


@pytest.fixture
async def acme(api: Client) -> Tenant:
    """Account acme (region DE) with campaigns Sales and Support."""
    return await make_tenant(api, "acme", "DE", ["Sales", "Support"])


@pytest.fixture
async def other(api: Client) -> Tenant:
    """A second account, whose contacts and campaigns acme must never see."""
    return await make_tenant(api, "other", "DE", ["Sales"])


def contact(tenant: Tenant, campaign: str = "Sales", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "DiallerCampaignsID": tenant.campaigns[campaign],
        "Name": "Mustermann",
        "PhoneNumber1": "+4930111111",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


async def call(
    api: Client, method: str, url: str, tenant: Tenant, status: int, **kw: Any
) -> dict[str, Any]:
    response = await api.request(method, url, headers=tenant.auth, **kw)
    body: dict[str, Any] = await response.json(content_type=None)
    assert response.status == status, body
    assert response.content_type == "application/json"
    return body


async def import_(
    api: Client, tenant: Tenant, body: Any, status: int = 200, query: str = ""
) -> dict[str, Any]:
    url = f"{tenant.base}/dialler/contacts/import{query}"
    return await call(api, "POST", url, tenant, status, json=body)


async def imported_id(api: Client, tenant: Tenant, body: Any, query: str = "") -> int:
    answer = await import_(api, tenant, body, query=query)
    record_id: int = answer["records"][0]["ID"]
    return record_id


async def history(api: Client, tenant: Tenant, lead_id: int) -> list[dict[str, Any]]:
    response = await api.get(
        f"/v1/leads/{lead_id}/history", headers={"Authorization": f"Bearer {tenant.native_key}"}
    )
    assert response.status == 200
    events: list[dict[str, Any]] = (await response.json())["events"]
    return events


# --- import -------------------------------------------------------------------------------------


async def test_import_with_every_seed_field_returns_the_full_contact(
    api: Client, acme: Tenant
) -> None:
    """Seed 004's all-fields body: 200, one record with every field, ID and run-time fields."""
    body = {"DiallerCampaignsID": acme.campaigns["Sales"], **SEED_CONTACT}
    answer = await import_(api, acme, body)
    assert answer["count"] == 1
    assert answer["status"] == 200
    assert list(answer) == ["records", "count", "status"]
    (record,) = answer["records"]
    for name, value in SEED_CONTACT.items():
        assert record[name] == value, name
    assert isinstance(record["ID"], int)
    assert record["DiallerCampaignsID"] == acme.campaigns["Sales"]
    assert all(record[name] is None for name in RUNTIME_NAMES)
    assert all(record[f"nTriesPhoneNumber{n}"] == 0 for n in range(1, 7))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", record["dtImported"])


async def test_the_contact_is_a_lead_with_the_documented_mapping(api: Client, acme: Tenant) -> None:
    """Mapped jtel fields land in canonical lead fields, the rest in extra under jtel names."""
    body = {"DiallerCampaignsID": acme.campaigns["Sales"], **SEED_CONTACT, "Amount": 12.5}
    lead_id = await imported_id(api, acme, body)
    response = await api.get(
        f"/v1/leads/{lead_id}", headers={"Authorization": f"Bearer {acme.native_key}"}
    )
    lead = await response.json()
    assert lead["lead_id"] == lead_id
    assert lead["phone_numbers"] == [SEED_CONTACT[f"PhoneNumber{n}"] for n in range(1, 7)]
    assert (lead["name"], lead["first_name"], lead["address1"]) == ("Name", "FirstName", "Address")
    assert (lead["user_data"], lead["reference_number"]) == ("testUserData", "ReferenceNumber")
    assert (lead["comments"], lead["email"], lead["postal_code"]) == (
        "Comment",
        "Email",
        "PostalCode",
    )
    assert lead["extra"]["Amount"] == 12.5
    assert lead["extra"]["Client"] == "Client"
    assert lead["extra"]["dtBeginDate"] == "2020-01-01T00:00:00"
    assert "Name" not in lead["extra"]
    assert "RandomSortOrder" not in lead["extra"]  # null fields are not stored


async def test_import_by_campaign_name(api: Client, acme: Tenant) -> None:
    """DiallerCampaignsName instead of the ID imports into that campaign."""
    body = contact(acme, DiallerCampaignsID=..., DiallerCampaignsName="Support")
    answer = await import_(api, acme, body)
    assert answer["records"][0]["DiallerCampaignsID"] == acme.campaigns["Support"]


async def test_dt_imported_is_the_lead_entry_time(
    api: Client, acme: Tenant, pool: asyncpg.Pool
) -> None:
    """dtImported is the lead's entry_at in UTC, to the second."""
    record = (await import_(api, acme, contact(acme)))["records"][0]
    async with pool.acquire() as conn:
        entry_at = await conn.fetchval(
            "SELECT entry_at FROM leads WHERE lead_id = $1", record["ID"]
        )
    assert record["dtImported"] == entry_at.strftime("%Y-%m-%dT%H:%M:%S")


async def test_overwrite_updates_the_contact_with_the_same_user_data(
    api: Client, acme: Tenant
) -> None:
    """overwriteDuplicates=true: same ID back, and LeadUpdated holds only the changed fields."""
    first = await imported_id(api, acme, contact(acme, UserData="ext-1", City="Berlin", Tag="a"))
    again = contact(acme, UserData="ext-1", City="Hamburg", Tag="b")
    answer = await import_(api, acme, again, query=OVERWRITE)
    record = answer["records"][0]
    assert record["ID"] == first
    assert (record["City"], record["Tag"]) == ("Hamburg", "b")
    events = await history(api, acme, first)
    assert [e["type"] for e in events] == ["LeadInserted", "LeadUpdated"]
    changes = events[1]["changes"]
    assert set(changes) == {"city", "extra"}
    assert changes["city"] == {"old": "Berlin", "new": "Hamburg"}
    assert events[1]["actor"]["dialect"] == "jtel"


async def test_overwrite_with_an_identical_contact_writes_nothing(
    api: Client, acme: Tenant
) -> None:
    """Re-importing the same contact with overwrite returns it and records no empty update."""
    body = {"DiallerCampaignsID": acme.campaigns["Sales"], **SEED_CONTACT}
    first = await imported_id(api, acme, body)
    assert await imported_id(api, acme, body, query=OVERWRITE) == first
    assert [e["type"] for e in await history(api, acme, first)] == ["LeadInserted"]


async def test_overwrite_clears_fields_the_new_contact_leaves_out(
    api: Client, acme: Tenant
) -> None:
    """The import replaces the jtel fields: one left out (Tag, Company) becomes null."""
    first = await imported_id(api, acme, contact(acme, UserData="u", Tag="t", Company="C"))
    answer = await import_(api, acme, contact(acme, UserData="u"), query=OVERWRITE)
    record = answer["records"][0]
    assert (record["ID"], record["Tag"], record["Company"]) == (first, None, None)


async def test_overwrite_without_a_match_creates_a_contact(api: Client, acme: Tenant) -> None:
    """overwriteDuplicates=true with a new UserData (or none at all) inserts."""
    first = await imported_id(api, acme, contact(acme, UserData="one"))
    second = await imported_id(api, acme, contact(acme, UserData="two"), OVERWRITE)
    third = await imported_id(api, acme, contact(acme), OVERWRITE)
    fourth = await imported_id(api, acme, contact(acme), OVERWRITE)
    assert len({first, second, third, fourth}) == 4


async def test_overwrite_matches_only_within_the_campaign(api: Client, acme: Tenant) -> None:
    """The same UserData in another campaign is another contact."""
    first = await imported_id(api, acme, contact(acme, UserData="x"))
    other = contact(acme, "Support", UserData="x")
    assert await imported_id(api, acme, other, OVERWRITE) != first


@pytest.mark.parametrize("query", ["?overwriteDuplicates=false", "", "?overwriteDuplicates=FALSE"])
async def test_without_overwrite_every_import_creates(
    api: Client, acme: Tenant, query: str
) -> None:
    """overwriteDuplicates=false (and missing: the default) always creates a new contact."""
    body = contact(acme, UserData="same")
    ids = [await imported_id(api, acme, body, query) for _ in range(2)]
    assert ids[0] != ids[1]


async def test_concurrent_overwrites_create_one_contact(
    api: Client, acme: Tenant, pool: asyncpg.Pool
) -> None:
    """Parallel overwrite imports of a new UserData: one inserts, the rest update that one."""
    bodies = [contact(acme, UserData="race", City=f"c{i}") for i in range(8)]
    ids = await asyncio.gather(*(imported_id(api, acme, b, OVERWRITE) for b in bodies))
    assert len(set(ids)) == 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM leads") == 1


async def test_an_invalid_overwrite_flag_is_a_400(api: Client, acme: Tenant) -> None:
    """overwriteDuplicates must be true or false."""
    answer = await import_(api, acme, contact(acme), 400, "?overwriteDuplicates=yes")
    assert answer == {
        "status": 400,
        "error": "Invalid value for overwriteDuplicates: must be true or false",
    }


@pytest.mark.parametrize(
    ("fields", "missing"),
    [
        ({"Name": ...}, "Name"),
        ({"Name": "  "}, "Name"),
        ({"DiallerCampaignsID": ...}, "DiallerCampaignsID or DiallerCampaignsName"),
        ({"PhoneNumber1": ...}, "PhoneNumber1..PhoneNumber6 (at least one)"),
        ({"PhoneNumber1": "", "PhoneNumber2": None}, "PhoneNumber1..PhoneNumber6 (at least one)"),
    ],
)
async def test_a_missing_required_field_is_a_400_naming_it(
    api: Client, acme: Tenant, fields: dict[str, Any], missing: str
) -> None:
    """Name, the campaign and one phone number are mandatory (seed 004)."""
    answer = await import_(api, acme, contact(acme, **fields), 400)
    assert answer == {"status": 400, "error": f"Required parameter missing: {missing}"}


@pytest.mark.parametrize(
    ("name", "limit"),
    [
        ("UserData", 64),
        ("Name", 64),
        ("Salutation", 16),
        ("Title", 16),
        ("PostalCode", 10),
        ("AccountBIC", 11),
        ("AccountIBAN", 34),
        ("PhoneNumber2", 32),
        ("Email", 256),
    ],
)
async def test_field_lengths_are_enforced(api: Client, acme: Tenant, name: str, limit: int) -> None:
    """A value at the limit is accepted; one character more is a 400 naming the field."""
    at_limit = "1" * limit if name.startswith("Phone") else "x" * limit
    record = (await import_(api, acme, contact(acme, **{name: at_limit})))["records"][0]
    assert record[name] == at_limit
    answer = await import_(api, acme, contact(acme, **{name: at_limit + "1"}), 400)
    assert answer == {
        "status": 400,
        "error": f"Field too long: {name} (at most {limit} characters)",
    }


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"Amount": "12 EUR"}, "Invalid value for Amount: a number is required"),
        ({"Amount": True}, "Invalid value for Amount: a number is required"),
        (
            {"FollowUpDateTime": "tomorrow"},
            "Invalid value for FollowUpDateTime: a datetime like 2020-01-01T00:00:00 is required",
        ),
        ({"RandomSortOrder": 1.5}, "Invalid value for RandomSortOrder: an integer is required"),
        ({"RandomSortOrder": "1.5"}, "Invalid value for RandomSortOrder: an integer is required"),
        (
            {"RandomSortOrder": -(10**26)},  # a Java int holds 32 bits
            (
                "Invalid value for RandomSortOrder: an integer from -2147483648 to 2147483647 is"
                " required"
            ),
        ),
        ({"City": ["Berlin"]}, "Invalid value for City: a string is required"),
        (
            {"DiallerCampaignsID": "seven"},
            "Invalid value for DiallerCampaignsID: an integer is required",
        ),
    ],
)
async def test_a_field_of_the_wrong_type_is_a_400(
    api: Client, acme: Tenant, fields: dict[str, Any], error: str
) -> None:
    """Amount is a number, FollowUpDateTime a datetime, RandomSortOrder a 32-bit integer, texts
    are strings."""
    answer = await import_(api, acme, contact(acme, **fields), 400)
    assert answer == {"status": 400, "error": error}


async def test_numbers_sent_as_text_are_read_as_jackson_reads_them(
    api: Client, acme: Tenant
) -> None:
    """Jackson, which binds jtel's JSON, coerces a numeric text to a number field by default:
    "12.5" is an Amount, "7" a RandomSortOrder, the campaign's id as text its id."""
    body = contact(acme, Amount="12.5", RandomSortOrder="7")
    body["DiallerCampaignsID"] = str(body["DiallerCampaignsID"])
    record = (await import_(api, acme, body))["records"][0]
    assert (record["Amount"], record["RandomSortOrder"]) == (12.5, 7)
    assert record["DiallerCampaignsID"] == acme.campaigns["Sales"]


async def test_typed_fields_round_trip(api: Client, acme: Tenant) -> None:
    """Amount stays a number, datetimes come back ISO, an integer text becomes a string."""
    body = contact(
        acme, Amount=99, FollowUpDateTime="2026-01-02 03:04:05", PostalCode=10115, RandomSortOrder=3
    )
    record = (await import_(api, acme, body))["records"][0]
    assert record["Amount"] == 99
    assert record["FollowUpDateTime"] == "2026-01-02T03:04:05"
    assert (record["PostalCode"], record["RandomSortOrder"]) == ("10115", 3)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"{not json", "Invalid JSON in request body"),
        (b"", "Invalid JSON in request body"),
        (b"[1, 2]", "Request body must be a JSON object (one dialler contact)"),
    ],
)
async def test_a_body_that_is_not_a_contact_is_a_400(
    api: Client, acme: Tenant, raw: bytes, error: str
) -> None:
    """Malformed JSON or a non-object body: 400 in jtel's shape, never a stack trace."""
    answer = await call(api, "POST", f"{acme.base}/dialler/contacts/import", acme, 400, data=raw)
    assert answer == {"status": 400, "error": error}


async def test_a_number_without_digits_is_a_400_and_is_audited(api: Client, acme: Tenant) -> None:
    """A phone number with no digits: 400, no lead, and a LeadRejected with the reason."""
    answer = await import_(api, acme, contact(acme, PhoneNumber1="n/a", UserData="bad"), 400)
    assert answer == {
        "status": 400,
        "error": "Invalid contact: a lead needs at least one phone number",
    }
    response = await api.get(
        "/v1/audit?type=LeadRejected,LeadInserted",
        headers={"Authorization": f"Bearer {acme.native_key}"},
    )
    (event,) = (await response.json())["events"]
    assert event["type"] == "LeadRejected"
    assert event["actor"]["dialect"] == "jtel"
    assert event["data"]["reason"] == "a lead needs at least one phone number"
    assert event["data"]["row"]["UserData"] == "bad"
    # A slot with no digit before a real number: it would have been the primary (refused,
    # audited the same way, nothing inserted).
    body = contact(acme, PhoneNumber1=..., PhoneNumber2="+", PhoneNumber3="9812300012")
    answer = await import_(api, acme, body, 400)
    reason = "PhoneNumber2 holds no digit: it is no phone number"
    assert answer == {"status": 400, "error": f"Invalid contact: {reason}"}
    response = await api.get(
        "/v1/audit?type=LeadRejected,LeadInserted",
        headers={"Authorization": f"Bearer {acme.native_key}"},
    )
    assert [e["data"]["reason"] for e in (await response.json())["events"]] == [
        "a lead needs at least one phone number",
        reason,
    ]
    # A superscript two is a digit to str.isdigit, not to a dedupe key: no number either.
    body = contact(acme, PhoneNumber1="\u00b2", PhoneNumber2="9812300013")
    answer = await import_(api, acme, body, 400)
    assert answer["error"] == "Invalid contact: PhoneNumber1 holds no digit: it is no phone number"


async def test_an_unknown_campaign_is_a_404(api: Client, acme: Tenant, other: Tenant) -> None:
    """An unknown campaign id or name, or another account's campaign: 404 Dialler campaign."""
    expected = {"status": 404, "error": "Dialler campaign not found"}
    for body in (
        contact(acme, DiallerCampaignsID=999999),
        contact(acme, DiallerCampaignsID=2**70),
        contact(acme, DiallerCampaignsID=..., DiallerCampaignsName="Nope"),
        contact(acme, DiallerCampaignsID=other.campaigns["Sales"]),
    ):
        assert await import_(api, acme, body, 404) == expected


async def test_ignores_fields_of_a_fetched_record(api: Client, acme: Tenant) -> None:
    """A record read with GET (ID, run-time fields) can be imported again as it is."""
    record = (await import_(api, acme, contact(acme, UserData="u1")))["records"][0]
    again = await import_(api, acme, record, query=OVERWRITE)
    assert again["records"][0] == record


async def test_phone_numbers_keep_their_slots(api: Client, acme: Tenant) -> None:
    """PhoneNumber3 alone comes back in slot 3; the lead's primary number is that number."""
    body = contact(acme, PhoneNumber1=..., PhoneNumber3="+4930333", PhoneNumber5="+4930555")
    record = (await import_(api, acme, body))["records"][0]
    slots = [record[f"PhoneNumber{n}"] for n in range(1, 7)]
    assert slots == [None, None, "+4930333", None, "+4930555", None]
    response = await api.get(
        f"/v1/leads/{record['ID']}", headers={"Authorization": f"Bearer {acme.native_key}"}
    )
    lead = await response.json()
    assert lead["phone_numbers"] == ["+4930333", "+4930555"]
    assert lead["extra"]["PhoneNumberSlots"] == "3,5"


async def test_overwrite_moves_numbers_back_to_the_first_slots(api: Client, acme: Tenant) -> None:
    """Overwriting slot-3-only with slot 1 drops the slot map and restores plain positions."""
    body = contact(acme, UserData="s", PhoneNumber1=..., PhoneNumber3="+4930333")
    lead_id = await imported_id(api, acme, body)
    answer = await import_(api, acme, contact(acme, UserData="s"), query=OVERWRITE)
    record = answer["records"][0]
    assert record["ID"] == lead_id
    assert [record[f"PhoneNumber{n}"] for n in (1, 3)] == ["+4930111111", None]


async def test_a_national_number_gets_an_e164_dedupe_key(
    api: Client, acme: Tenant, pool: asyncpg.Pool
) -> None:
    """'+49 30 1234567' is stored as given, with the dedupe key +49301234567 (region DE)."""
    record = (await import_(api, acme, contact(acme, PhoneNumber1="+49 30 1234567")))["records"][0]
    assert record["PhoneNumber1"] == "+49 30 1234567"
    local = (await import_(api, acme, contact(acme, PhoneNumber1="030 1234567")))["records"][0]
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT lead_id, value FROM contacts WHERE kind = 'phone' ORDER BY lead_id"
        )
    assert [(r["lead_id"], r["value"]) for r in rows] == [
        (record["ID"], "+49301234567"),
        (local["ID"], "+49301234567"),
    ]


async def test_a_too_large_body_is_a_413(
    database_url: str, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    """A body over the server's limit is refused in jtel's shape."""
    settings = Settings(admin_token=ADMIN_TOKEN, db_pool_min=1, db_pool_max=4, max_body_bytes=2048)
    api = await aiohttp_client(create_app(settings, database_url))
    acme = await make_tenant(api, "acme", "DE", ["Sales"])
    answer = await import_(api, acme, contact(acme, Comment="x" * 4000), 413)
    assert answer == {"status": 413, "error": "Request body too large"}


# --- auth and isolation ---------------------------------------------------------------------------


async def test_a_bad_token_is_a_401_on_every_route(api: Client, acme: Tenant) -> None:
    """No token, an unknown one, or another dialect's key: 401 in jtel's shape."""
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {acme.native_key}"},
        {"Authorization": acme.key},
    ):
        for method, path in (
            ("POST", "/dialler/contacts/import"),
            ("GET", "/dialler/contacts?diallerCampaignsID=1"),
            ("GET", "/dialler/contacts/1"),
            ("DELETE", "/dialler/contacts/contact/1"),
            ("DELETE", "/dialler/contacts/contact?userData=x"),
            ("GET", "/nothing/here"),
        ):
            response = await api.request(method, acme.base + path, headers=headers, json={})
            assert response.status == 401, (method, path)
            body = await response.json()
            assert body == {"status": 401, "error": "Unauthorized: invalid or missing Bearer token"}


async def test_another_accounts_clients_id_is_a_401(
    api: Client, acme: Tenant, other: Tenant
) -> None:
    """A valid token with a ClientsID that is not its account (or not a number) is refused."""
    for clients_id in (other.account_id, "acme", 0):
        url = f"/rest/v1.0/{clients_id}/dialler/contacts/import"
        answer = await call(api, "POST", url, acme, 401, json=contact(acme))
        assert answer == {
            "status": 401,
            "error": "Unauthorized: ClientsID does not match the token",
        }


async def test_another_accounts_contact_is_not_found(
    api: Client, acme: Tenant, other: Tenant
) -> None:
    """GET and DELETE of a lead id of another account answer 404, and delete nothing."""
    theirs = await imported_id(api, other, contact(other, UserData="theirs"))
    missing = {"status": 404, "error": "Dialler contact not found"}
    assert await call(api, "GET", f"{acme.base}/dialler/contacts/{theirs}", acme, 404) == missing
    url = f"{acme.base}/dialler/contacts/contact/{theirs}"
    assert await call(api, "DELETE", url, acme, 404) == missing
    url = f"{acme.base}/dialler/contacts/contact?userData=theirs"
    assert await call(api, "DELETE", url, acme, 404) == missing
    await call(api, "GET", f"{other.base}/dialler/contacts/{theirs}", other, 200)


async def test_an_unknown_route_under_the_base_is_a_json_404(api: Client, acme: Tenant) -> None:
    """Paths and methods the API lacks answer jtel's error shape, not a framework page; so do
    OPTIONS (a browser's preflight) and other methods no route has, with or without a key."""
    for method, path in (("GET", "/dialler/skills"), ("PUT", "/dialler/contacts/import")):
        answer = await call(api, method, acme.base + path, acme, 404)
        assert answer == {"status": 404, "error": "Resource not found"}
    for method in ("OPTIONS", "PROPFIND"):
        response = await api.request(method, f"{acme.base}/dialler/contacts/import")
        assert response.status == 404
        assert response.content_type == "application/json"
        assert await response.json() == {"status": 404, "error": "Resource not found"}


# --- list and get ---------------------------------------------------------------------------------


async def test_list_orders_by_name_then_id_with_the_jtel_envelope(
    api: Client, acme: Tenant
) -> None:
    """GET contacts?diallerCampaignsID: every contact of the campaign, by Name then ID."""
    ids: dict[str, list[int]] = {}
    for name in ("Zander", "Adler", "Meier", "Adler"):
        ids.setdefault(name, []).append(await imported_id(api, acme, contact(acme, Name=name)))
    await imported_id(api, acme, contact(acme, "Support", Name="Other campaign"))
    url = f"{acme.base}/dialler/contacts?diallerCampaignsID={acme.campaigns['Sales']}"
    answer = await call(api, "GET", url, acme, 200)
    assert [r["ID"] for r in answer["records"]] == [*ids["Adler"], *ids["Meier"], *ids["Zander"]]
    assert {k: v for k, v in answer.items() if k != "records"} == {
        "filter": "",
        "limitStart": 0,
        "limitPageSize": -1,
        "count": 4,
        "orderBy": "Name",
        "ascending": True,
        "status": 200,
    }
    assert list(answer) == [
        "filter", "limitStart", "limitPageSize", "records", "count", "orderBy", "ascending",
        "status",
    ]  # fmt: skip


async def test_list_pages_with_limit_start_and_page_size(api: Client, acme: Tenant) -> None:
    """limitStart/limitPageSize select a page; count stays the total."""
    for n in range(5):
        await imported_id(api, acme, contact(acme, Name=f"N{n}"))
    url = f"{acme.base}/dialler/contacts?diallerCampaignsID={acme.campaigns['Sales']}"
    answer = await call(api, "GET", f"{url}&limitStart=1&limitPageSize=2", acme, 200)
    assert [r["Name"] for r in answer["records"]] == ["N1", "N2"]
    assert (answer["count"], answer["limitStart"], answer["limitPageSize"]) == (5, 1, 2)
    tail = await call(api, "GET", f"{url}&limitStart=4", acme, 200)
    assert [r["Name"] for r in tail["records"]] == ["N4"]
    beyond = await call(api, "GET", f"{url}&limitStart=9&limitPageSize=3", acme, 200)
    assert (beyond["records"], beyond["count"]) == ([], 5)


async def test_list_of_an_empty_campaign(api: Client, acme: Tenant) -> None:
    """A campaign without contacts lists none, count 0."""
    url = f"{acme.base}/dialler/contacts?diallerCampaignsID={acme.campaigns['Support']}"
    answer = await call(api, "GET", url, acme, 200)
    assert (answer["records"], answer["count"]) == ([], 0)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("", "Required parameter missing: diallerCampaignsID"),
        ("?limitStart=0", "Required parameter missing: diallerCampaignsID"),
        ("?diallerCampaignsID=abc", "Invalid value for diallerCampaignsID: " + INTEGER),
        ("&limitStart=-1", "Invalid value for limitStart: must be at least 0"),
        ("&limitPageSize=x", "Invalid value for limitPageSize: " + INTEGER),
        ("&filter=Name%3DX", "Parameter not supported: filter"),
        ("&orderBy=City", "Invalid value for orderBy: only Name is supported"),
        ("&ascending=false", "Invalid value for ascending: only true is supported"),
    ],
)  # fmt: skip
async def test_list_parameter_errors_are_400(
    api: Client, acme: Tenant, query: str, error: str
) -> None:
    """diallerCampaignsID is required; bad or unsupported parameters are a 400 naming them."""
    if query.startswith("&"):
        query = f"?diallerCampaignsID={acme.campaigns['Sales']}{query}"
    url = f"{acme.base}/dialler/contacts{query}"
    assert await call(api, "GET", url, acme, 400) == {"status": 400, "error": error}


async def test_list_of_an_unknown_or_foreign_campaign_is_a_404(
    api: Client, acme: Tenant, other: Tenant
) -> None:
    """An unknown campaign id, or another account's: 404 Dialler campaign not found."""
    for campaign_id in (999999, other.campaigns["Sales"], 0, 2**70):
        url = f"{acme.base}/dialler/contacts?diallerCampaignsID={campaign_id}"
        answer = await call(api, "GET", url, acme, 404)
        assert answer == {"status": 404, "error": "Dialler campaign not found"}


async def test_get_by_id_returns_the_contact(api: Client, acme: Tenant) -> None:
    """GET contacts/{ID}: {"records": [contact], "count": 1, "status": 200}."""
    record = (await import_(api, acme, contact(acme, UserData="g")))["records"][0]
    answer = await call(api, "GET", f"{acme.base}/dialler/contacts/{record['ID']}", acme, 200)
    assert answer == {"records": [record], "count": 1, "status": 200}


@pytest.mark.parametrize("lead_id", ["424242", "abc", "0", str(2**70)])
async def test_get_a_missing_contact_is_a_404(api: Client, acme: Tenant, lead_id: str) -> None:
    """An id that names no live contact (or no possible one) is a 404."""
    answer = await call(api, "GET", f"{acme.base}/dialler/contacts/{lead_id}", acme, 404)
    assert answer == {"status": 404, "error": "Dialler contact not found"}


async def native_leads(pool: asyncpg.Pool, tenant: Tenant, *rows: LeadFields) -> list[int]:
    """Leads written through service.lead_inserts as another dialect writes them, in Sales;
    their ids in order."""
    ctx = Context(actor=Actor(dialect="native", account_id=tenant.account_id), request_id="t")
    async with pool.acquire() as conn, conn.transaction():
        result = await insert_leads(
            conn,
            ctx,
            account_id=tenant.account_id,
            campaign_id=tenant.campaigns["Sales"],
            rows=list(rows),
            check_duplicates=True,
        )
    return [result.inserted[index] for index in range(len(rows))]


async def test_a_lead_of_another_dialect_renders_as_a_contact(
    api: Client, acme: Tenant, pool: asyncpg.Pool
) -> None:
    """A lead written through service.leads by another dialect is a jtel contact too."""
    (lead_id,) = await native_leads(
        pool, acme, LeadFields(phone_numbers=["+4930999", "+4930998"], name="Native", city="Köln")
    )
    record = (await call(api, "GET", f"{acme.base}/dialler/contacts/{lead_id}", acme, 200))[
        "records"
    ][0]
    assert (record["Name"], record["City"], record["Tag"]) == ("Native", "Köln", None)
    assert (record["PhoneNumber1"], record["PhoneNumber2"], record["PhoneNumber3"]) == (
        "+4930999",
        "+4930998",
        None,
    )


async def test_another_dialects_values_in_jtel_fields_read_as_jtel_types(
    api: Client, acme: Tenant, pool: asyncpg.Pool
) -> None:
    """A column of another dialect's upload named like a jtel field (kept in `extra` as text)
    reads as jtel's type when it is one (`"12.5"` an Amount, `"7"` a RandomSortOrder, an ISO
    date a dtBeginDate), else null, so a jtel client can parse the record and post it back."""
    odd: dict[str, ExtraValue] = {
        "Amount": "lots",
        "RandomSortOrder": "x",
        "dtBeginDate": "yesterday",
        "Client": 7,
    }
    fits: dict[str, ExtraValue] = {
        "Amount": "12.5",
        "RandomSortOrder": "7",
        "dtBeginDate": "2020-01-01",
    }
    inserted = await native_leads(
        pool,
        acme,
        LeadFields(phone_numbers=["+4930991"], name="Odd", extra=odd),
        LeadFields(phone_numbers=["+4930992"], name="Fits", extra=fits),
    )
    names = ("Amount", "RandomSortOrder", "dtBeginDate", "Client")
    read = []
    for lead_id in inserted:
        url = f"{acme.base}/dialler/contacts/{lead_id}"
        (record,) = (await call(api, "GET", url, acme, 200))["records"]
        read.append(tuple(record[name] for name in names))
        await import_(api, acme, record, query="?overwriteDuplicates=true")
    assert read == [(None, None, None, "7"), (12.5, 7, "2020-01-01T00:00:00", None)]


# --- delete and archive ---------------------------------------------------------------------------


async def test_delete_by_id(api: Client, acme: Tenant) -> None:
    """DELETE contact/{ID}: 200 {"status": 200}, LeadDeleted (reason api), then GET is 404."""
    lead_id = await imported_id(api, acme, contact(acme))
    url = f"{acme.base}/dialler/contacts/contact/{lead_id}"
    assert await call(api, "DELETE", url, acme, 200) == {"status": 200}
    await call(api, "GET", f"{acme.base}/dialler/contacts/{lead_id}", acme, 404)
    events = await history(api, acme, lead_id)
    assert events[-1]["type"] == "LeadDeleted"
    assert events[-1]["actor"]["dialect"] == "jtel"
    assert await call(api, "DELETE", url, acme, 404) == {
        "status": 404,
        "error": "Dialler contact not found",
    }


async def test_delete_by_user_data_takes_the_lowest_id_across_campaigns(
    api: Client, acme: Tenant
) -> None:
    """DELETE contact?userData=X deletes the first match (lowest ID), one per call, then 404."""
    first = await imported_id(api, acme, contact(acme, "Support", UserData="X"))
    second = await imported_id(api, acme, contact(acme, "Sales", UserData="X"))
    keep = await imported_id(api, acme, contact(acme, UserData="Y"))
    url = f"{acme.base}/dialler/contacts/contact?userData=X"
    base = f"{acme.base}/dialler/contacts"
    assert await call(api, "DELETE", url, acme, 200) == {"status": 200}
    await call(api, "GET", f"{base}/{first}", acme, 404)
    await call(api, "GET", f"{base}/{second}", acme, 200)
    await call(api, "DELETE", url, acme, 200)
    await call(api, "GET", f"{base}/{second}", acme, 404)
    answer = await call(api, "DELETE", url, acme, 404)
    assert answer == {"status": 404, "error": "Dialler contact not found"}
    await call(api, "GET", f"{base}/{keep}", acme, 200)


@pytest.mark.parametrize("query", ["", "?userData="])
async def test_delete_by_user_data_needs_the_parameter(
    api: Client, acme: Tenant, query: str
) -> None:
    """A missing or empty userData is a 400."""
    url = f"{acme.base}/dialler/contacts/contact{query}"
    answer = await call(api, "DELETE", url, acme, 400)
    assert answer == {"status": 400, "error": "Required parameter missing: userData"}


async def test_an_archived_contact_is_gone_from_jtel(
    api: Client, acme: Tenant, pool: asyncpg.Pool
) -> None:
    """The Vicidial archive (insert + delete) removes the contact: GET by ID is then 404."""
    lead_id = await imported_id(api, acme, contact(acme, UserData="arch"))
    ctx = Context(actor=Actor(dialect="vicidial", account_id=acme.account_id), request_id="t")
    async with pool.acquire() as conn, conn.transaction():
        counts = await archive_leads(
            conn,
            ctx,
            account_id=acme.account_id,
            lead_ids=[lead_id],
            insert=True,
            update=False,
            delete=True,
        )
    assert (counts.insert_count, counts.delete_count) == (1, 1)
    await call(api, "GET", f"{acme.base}/dialler/contacts/{lead_id}", acme, 404)
    url = f"{acme.base}/dialler/contacts?diallerCampaignsID={acme.campaigns['Sales']}"
    assert (await call(api, "GET", url, acme, 200))["count"] == 0
    # Overwrite no longer finds it either: the next import by that UserData is a new contact.
    body = contact(acme, UserData="arch")
    assert await imported_id(api, acme, body, OVERWRITE) != lead_id


# --- documentation --------------------------------------------------------------------------------


async def test_every_jtel_route_is_documented(api: Client) -> None:
    """The OpenAPI document is valid and covers each jtel route and method."""
    assert api.app is not None
    document = openapi.build_document(api.app)
    validate(document)
    for resource in api.app.router.resources():
        if not resource.canonical.startswith("/rest/v1.0/"):
            continue
        for route in resource:
            if route.method != "HEAD":
                assert route.method.lower() in document["paths"][resource.canonical], (
                    route.method,
                    resource.canonical,
                )
    post = document["paths"][IMPORT_PATH]["post"]
    assert post["security"] == [{"jtelKey": []}]


async def test_replaying_the_log_rebuilds_the_same_projections(
    api: Client, acme: Tenant, owner_pool: asyncpg.Pool
) -> None:
    """After imports, overwrites, slot maps and deletes, `projections verify` finds no drift."""
    await imported_id(
        api, acme, contact(acme, UserData="v", PhoneNumber1=..., PhoneNumber4="+49304")
    )
    await import_(api, acme, contact(acme, UserData="v", Amount=3.5), query=OVERWRITE)
    doomed = await imported_id(api, acme, contact(acme, "Support", UserData="w"))
    await call(api, "DELETE", f"{acme.base}/dialler/contacts/contact/{doomed}", acme, 200)
    await import_(api, acme, contact(acme, PhoneNumber1="none"), 400)
    report = await verify(owner_pool)  # shadow tables are the owner's to create
    assert [t.name for t in report.tables if not t.ok] == []


async def test_delete_by_user_data_racing_an_account_wide_entry_does_not_deadlock(
    api: Client, acme: Tenant, pool: asyncpg.Pool
) -> None:
    """The first contact with the UserData (in Support) is deleted by another writer while the
    call waits for Support's lock, and an account-wide do-not-call entry holds Sales and waits
    for Support too: the call takes the next contact (in Sales) without holding Support, so it
    cannot deadlock with the entry; both answer, and the contact in Sales is deleted."""
    first = await imported_id(api, acme, contact(acme, "Support", UserData="X"))
    second = await imported_id(api, acme, contact(acme, "Sales", UserData="X"))
    url = f"{acme.base}/dialler/contacts/contact?userData=X"
    native = {"Authorization": f"Bearer {acme.native_key}"}
    ctx = Context(actor=Actor(dialect="native", account_id=acme.account_id), request_id="t")
    support = acme.campaigns["Support"]
    async with pool.acquire() as holder, write_transaction(holder, campaigns=[support]):
        await delete_leads(holder, ctx, account_id=acme.account_id, lead_ids=[first])
        deleting = asyncio.create_task(call(api, "DELETE", url, acme, 200))
        await advisory_waiters(pool, 1)
        blocking = asyncio.create_task(
            api.post("/v1/dnc", json=[{"phone": "+4930999999"}], headers=native)
        )
        await advisory_waiters(pool, 2)
    assert await deleting == {"status": 200}
    assert (await blocking).status == 201
    await call(api, "GET", f"{acme.base}/dialler/contacts/{second}", acme, 404)
