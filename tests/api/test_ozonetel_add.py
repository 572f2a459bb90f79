"""Ozonetel CloudAgent AddCampaignData (seed 002) through the real app and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp import web
from openapi_spec_validator import validate

from lead_ledger.api import ozonetel_add
from lead_ledger.api.app import create_app
from lead_ledger.api.keys import CLOCK
from lead_ledger.ledger.database import init_connection
from lead_ledger.service.ozonetel import AddCampaignData, Added, AlreadyExists, Refusal
from lead_ledger.service.ozonetel_adds import AddCampaignDataGroups
from lead_ledger.service.writer import Origin
from lead_ledger.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.support import Client, fresh_minute

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
PATH = ozonetel_add.PATH

PLEASE_PASS = "Please pass the valid Campaign action SuccessFully Updated {} Campaign Data"


def with_clock(app: web.Application) -> web.Application:
    """The app with its clock fixed at NOW."""
    app[CLOCK] = lambda: NOW
    return app


@pytest.fixture
async def make_client(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Callable[[], Awaitable[Client]]:
    """Builds app instances on this test's one database (several may share it)."""

    async def make() -> Client:
        return await aiohttp_client(with_clock(create_app(settings, database_url)))

    return make


@pytest.fixture
async def api(make_client: Callable[[], Awaitable[Client]]) -> Client:
    return await make_client()


@dataclass(frozen=True)
class Account:
    name: str
    key: str
    native_key: str


async def admin(api: Client, method: str, path: str, body: object = None) -> Any:
    response = await api.request(method, f"/v1/admin{path}", json=body, headers=ADMIN)
    assert response.status < 300, await response.text()
    return await response.json()


async def make_account(api: Client, name: str = "acme", region: str | None = "IN") -> Account:
    """An account with an ozonetel and a native key, campaigns of every kind, an agent, a skill."""
    await admin(api, "POST", "/accounts", {"name": name, "default_region": region})
    key = (await admin(api, "POST", f"/accounts/{name}/credentials", {"api": "ozonetel"}))["key"]
    native = (await admin(api, "POST", f"/accounts/{name}/credentials", {"api": "native"}))["key"]
    for campaign in (
        {"name": "sales"},
        {"name": "second"},
        {"name": "support", "direction": "inbound"},
        {"name": "agents", "assignment": "agentwise", "dial_mode": "Preview"},
        {"name": "skills", "assignment": "skillwise", "dial_mode": "IVR"},
    ):
        await admin(api, "POST", f"/accounts/{name}/campaigns", campaign)
    await admin(api, "POST", f"/accounts/{name}/agents", {"agent_id": "agent-1"})
    await admin(api, "POST", f"/accounts/{name}/skills", {"name": "billing"})
    return Account(name=name, key=key, native_key=native)


@pytest.fixture
async def acme(api: Client) -> Account:
    return await make_account(api)


def body(account: Account, **fields: object) -> dict[str, object]:
    return {"userName": account.name, "campaignName": "sales", "phoneNumber": "9876543210"} | {
        k: v for k, v in fields.items() if v is not ...
    }


async def post(
    api: Client, account: Account | None, payload: object, **headers: str
) -> tuple[int, Any]:
    sent = {"apiKey": account.key} if account else {}
    response = await api.post(PATH, json=payload, headers=sent | headers)
    return response.status, await response.json()


async def add(api: Client, account: Account, **fields: object) -> Any:
    status, answer = await post(api, account, body(account, **fields))
    assert status == 200
    return answer


async def count(pool: asyncpg.Pool) -> int:
    total: int = await pool.fetchval("SELECT count(*) FROM leads")
    return total


async def leads(pool: asyncpg.Pool, campaign: str = "sales") -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT l.* FROM leads l JOIN campaigns c USING (campaign_id)"
        " WHERE c.name = $1 ORDER BY lead_id",
        campaign,
    )


def added(campaign: str = "sales") -> dict[str, str]:
    return {"status": "Success", "message": PLEASE_PASS.format(campaign)}


def auth_reply(message: str) -> dict[str, object]:
    return {"status": "false", "message": message, "data": None}


# --- 1-5: key, user and account setting -------------------------------------------------------


async def test_a_body_with_a_byte_order_mark_is_read(api: Client, acme: Account) -> None:
    """A .NET or PowerShell client's JSON starts with a UTF-8 BOM, which CloudAgent's Jackson
    skips: the number is added."""
    raw = b"\xef\xbb\xbf" + json.dumps(body(acme)).encode()
    response = await api.post(
        PATH, data=raw, headers={"apiKey": acme.key, "Content-Type": "application/json"}
    )
    assert (response.status, await response.json()) == (200, added())


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Api Key Should Not be Null or Empty."),
        # Seed 002: "Invalid api_key / Empty api_key value" is Invalid User Details.
        ({"apiKey": ""}, "Invalid User Details"),
        ({"apiKey": "  "}, "Invalid User Details"),
    ],
)
async def test_missing_or_empty_api_key(
    api: Client, acme: Account, headers: dict[str, str], message: str
) -> None:
    """No apiKey header is "Should Not be Null or Empty"; an empty one is a key that matches no
    user, as the seed lists it."""
    response = await api.post(PATH, json=body(acme), headers=headers)
    assert response.status == 200
    assert await response.json() == auth_reply(message)


async def test_unknown_api_key(api: Client, acme: Account, pool: asyncpg.Pool) -> None:
    """A key that is no ozonetel credential (unknown, or a native one) is Invalid User Details."""
    for key in ("no-such-key", acme.native_key):
        response = await api.post(PATH, json=body(acme), headers={"apiKey": key})
        assert await response.json() == auth_reply("Invalid User Details")
    assert await count(pool) == 0


@pytest.mark.parametrize("username", [..., "", "   ", None])
async def test_missing_or_empty_username(api: Client, acme: Account, username: object) -> None:
    """userName missing, empty, blank or null: Username Should Not be Null or Empty."""
    payload = body(acme)
    if username is ...:
        del payload["userName"]
    else:
        payload["userName"] = username
    assert (await post(api, acme, payload))[1] == auth_reply(
        "Username Should Not be Null or Empty."
    )


async def test_username_of_another_account(api: Client, acme: Account) -> None:
    """A userName that is not the key's account is Invalid User Details; case does not matter."""
    other = await make_account(api, "globex")
    answer = await add(api, acme, userName=other.name)
    assert answer == auth_reply("Invalid User Details")
    assert await add(api, acme, userName="ACME") == added()


@pytest.mark.parametrize("setting", ["TOKEN_AUTH", "NONE"])
async def test_api_authentication_not_basic(
    api: Client, acme: Account, pool: asyncpg.Pool, setting: str
) -> None:
    """With API Authentication TOKEN_AUTH or NONE the API answers Invalid action."""
    await admin(api, "PATCH", "/accounts/acme/settings", {"api_authentication": setting})
    assert await add(api, acme) == auth_reply("Invalid action.")
    assert await count(pool) == 0


# --- 6-8: the campaign -------------------------------------------------------------------------


@pytest.mark.parametrize("campaign", [..., "", None])
async def test_missing_campaign_name(api: Client, acme: Account, campaign: object) -> None:
    """campaignName missing, empty or null: Please provide campaign details."""
    payload = body(acme, campaignName=campaign)
    if campaign is ...:
        del payload["campaignName"]
    status, answer = await post(api, acme, payload)
    assert (status, answer) == (
        200,
        {"status": "Error", "message": "Please provide campaign details"},
    )


async def test_unknown_campaign(api: Client, acme: Account) -> None:
    """A campaign that does not exist, or is another account's, is No User Found or ...Invalid."""
    globex = await make_account(api, "globex")
    await admin(api, "POST", "/accounts/globex/campaigns", {"name": "theirs"})
    expected = {"status": "FAIL", "message": "No User Found or Campaign Name is Invalid"}
    for name in ("nope", "theirs", "SALES", "sa\x00les"):
        assert await add(api, acme, campaignName=name) == expected
    assert await add(api, globex, campaignName="theirs") == added("theirs")


async def test_inbound_campaign(api: Client, acme: Account) -> None:
    """An inbound campaign is refused: The selected campaign is not outbound."""
    answer = await add(api, acme, campaignName="support")
    assert answer == {"status": "Fail", "message": "The selected campaign is not outbound"}


# --- 9-13: the lead's fields ---------------------------------------------------------------------

BAD_PHONE = {
    "status": "error",
    "message": "phone number should be numeric and must be between 3 to 16 digits"
    " and allows prefix +",
}


@pytest.mark.parametrize(
    "phone", [..., None, "", "12", "12345678901234567", "98765abc10", "++919876", "98 76", "+"]
)
async def test_invalid_phone_number(
    api: Client, acme: Account, pool: asyncpg.Pool, phone: object
) -> None:
    """Missing, empty, non-numeric, too short or too long numbers get the phone error."""
    payload = body(acme, phoneNumber=phone)
    if phone is ...:
        del payload["phoneNumber"]
    assert (await post(api, acme, payload))[1] == BAD_PHONE
    assert await count(pool) == 0


@pytest.mark.parametrize("phone", ["123", "+1234567890123456", 9876543210])
async def test_phone_number_limits_accepted(
    api: Client, acme: Account, pool: asyncpg.Pool, phone: object
) -> None:
    """3 digits, 16 digits after +, and a JSON number are accepted and stored as text."""
    assert await add(api, acme, phoneNumber=phone) == added()
    assert [r["phone_numbers"] for r in await leads(pool)] == [[str(phone)]]


BAD_PRIORITY = {
    "status": "Error",
    "message": "The priority value must be numeric and range from 0 to 99.",
}


@pytest.mark.parametrize(
    "priority", ["", "abc", 100, -1, "100", 5.5, True, " 5", "9" * 4301, "1" + "0" * 5000]
)
async def test_invalid_priority(api: Client, acme: Account, priority: object) -> None:
    """A priority that is not an integer 0-99 (empty included) is refused."""
    assert await add(api, acme, priority=priority) == BAD_PRIORITY


@pytest.mark.parametrize(
    ("priority", "stored"),
    # Leading zeros, however many, change no number (past Python's 4,300-digit int limit too).
    [(..., 1), (0, 0), (99, 99), ("5", 5), ("0" * 4301, 0), ("0" * 5000 + "42", 42)],
)
async def test_priority_stored(
    api: Client, acme: Account, pool: asyncpg.Pool, priority: object, stored: int
) -> None:
    """Absent priority is 1; integers 0-99 and numeric strings are stored as numbers."""
    assert await add(api, acme, priority=priority) == added()
    assert [r["priority"] for r in await leads(pool)] == [stored]


BAD_DATE = {
    "status": "Error",
    "message": "Invalid date format. Please pass date in format yyyy-MM-dd HH:mm:ss or yyyy-MM-dd",
}
PAST = {"status": "Error", "message": "The expiry date and time must be in the future"}


@pytest.mark.parametrize(
    "expiry", ["", "2031/01/01", "2031-01-01T10:00:00", "2031-02-30", "2031-01-01 25:00:00", 5]
)
async def test_invalid_expiry_date(api: Client, acme: Account, expiry: object) -> None:
    """An expiry in neither format (or no real date) is Invalid date format."""
    assert await add(api, acme, expiryDate=expiry) == BAD_DATE


@pytest.mark.parametrize("expiry", ["2030-01-01 12:00:00", "2030-01-01", "2029-12-31 23:59:59"])
async def test_expiry_date_not_in_future(api: Client, acme: Account, expiry: str) -> None:
    """An expiry at or before now (12:00 UTC; a bare date is midnight) is refused."""
    assert await add(api, acme, expiryDate=expiry) == PAST


async def test_expiry_date_stored_in_office_hours_timezone(
    api: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """Expiry wall times are UTC by default and in the office-hours timezone when set."""
    assert await add(api, acme, expiryDate="2030-01-01 12:00:01") == added()
    hours = {"timezone": "Asia/Kolkata", "days": [1, 2, 3, 4, 5], "start": "09:00", "end": "18:00"}
    await admin(api, "PATCH", "/accounts/acme/settings", {"office_hours": hours})
    # 17:30 in Kolkata is 12:00 UTC: now, so no longer in the future.
    assert await add(api, acme, expiryDate="2030-01-01 17:30:00") == PAST
    assert await add(api, acme, phoneNumber="9876543211", expiryDate="2030-01-02") == added()
    stored = [r["expires_at"] for r in await leads(pool)]
    assert stored == [
        datetime(2030, 1, 1, 12, 0, 1, tzinfo=UTC),
        datetime(2030, 1, 1, 18, 30, tzinfo=UTC),
    ]


async def test_the_last_day_there_is_west_of_utc_never_expires(
    api: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """9999-12-31 23:59:59 in New York is past the last moment a time holds in UTC: the lead
    is added, expiring at that last moment (never), not a 500."""
    hours = {"timezone": "America/New_York", "days": [1, 2, 3, 4, 5, 6, 7], "start": "00:00"}
    await admin(api, "PATCH", "/accounts/acme/settings", {"office_hours": hours | {"end": "23:59"}})
    assert await add(api, acme, expiryDate="9999-12-31 23:59:59") == added()
    assert [r["expires_at"] for r in await leads(pool)] == [
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    ]


@pytest.mark.parametrize("agent", [..., "", None])
async def test_agentwise_campaign_without_agent(api: Client, acme: Account, agent: object) -> None:
    """An agentwise campaign needs agentId: missing, empty or null is Agent Is Empty!."""
    answer = await add(api, acme, campaignName="agents", agentId=agent)
    assert answer == {"status": "FAIL", "message": "Agent Is Empty!"}


async def test_agentwise_campaign_unknown_agent(api: Client, acme: Account) -> None:
    """An agent the account does not have (or another account's) is not correctly mapped."""
    globex = await make_account(api, "globex")
    await admin(api, "POST", f"/accounts/{globex.name}/agents", {"agent_id": "agent-9"})
    for agent in ("agent-9", "nobody"):
        answer = await add(api, acme, campaignName="agents", agentId=agent)
        assert answer == {"status": "FAIL", "message": "Agent is not correctly mapped!"}


async def test_agentwise_campaign_valid_agent(
    api: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """A mapped agent is accepted and becomes the lead's agent."""
    assert await add(api, acme, campaignName="agents", agentId="agent-1") == added("agents")
    assert [r["agent"] for r in await leads(pool, "agents")] == ["agent-1"]


@pytest.mark.parametrize("skill", [..., "", None, "nonexistent"])
async def test_skillwise_campaign_invalid_skill(api: Client, acme: Account, skill: object) -> None:
    """A skillwise campaign needs a known skill: missing, empty or unknown are refused."""
    answer = await add(api, acme, campaignName="skills", skill=skill)
    assert answer == {"status": "FAIL", "message": "Please provide valid skill"}


async def test_skillwise_campaign_valid_skill(
    api: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """A known skill is accepted and stored with the lead, with the Name."""
    answer = await add(api, acme, campaignName="skills", skill="billing", Name="Meera")
    assert answer == added("skills")
    [lead] = await leads(pool, "skills")
    assert (lead["skill"], lead["name"]) == ("billing", "Meera")


# --- 14: the rate limit ---------------------------------------------------------------------------


RATE_LIMITED = {"status": "error", "message": "Request limit exhausted"}


async def test_rate_limit(api: Client, acme: Account, pool: asyncpg.Pool) -> None:
    """Past ozonetel_add_per_minute a request is 429 Request limit exhausted and adds nothing."""
    await admin(
        api, "PATCH", "/accounts/acme/settings", {"rate_limits": {"ozonetel_add_per_minute": 2}}
    )
    await fresh_minute()
    for phone in ("9876543210", "9876543211"):
        assert await add(api, acme, phoneNumber=phone) == added()
    started = datetime.now(UTC)
    response = await api.post(
        PATH, json=body(acme, phoneNumber="9876543212"), headers={"apiKey": acme.key}
    )
    assert (response.status, await response.json()) == (429, RATE_LIMITED)
    # The seconds left in the minute the limit counts: trying again then is allowed.
    wait = int(response.headers["Retry-After"])
    assert 1 <= wait <= 60
    assert wait in {60 - started.second, 60 - datetime.now(UTC).second}
    assert await count(pool) == 2


async def test_rate_limit_shared_by_two_app_instances(
    api: Client, make_client: Callable[[], Awaitable[Client]], acme: Account
) -> None:
    """Two app instances on one database count one limit: the third request is refused."""
    other = await make_client()
    await admin(
        api, "PATCH", "/accounts/acme/settings", {"rate_limits": {"ozonetel_add_per_minute": 3}}
    )
    await fresh_minute()
    assert await add(api, acme, phoneNumber="9876543210") == added()
    assert await add(other, acme, phoneNumber="9876543211") == added()
    assert await add(api, acme, phoneNumber="9876543212") == added()
    assert await post(other, acme, body(acme, phoneNumber="9876543213")) == (429, RATE_LIMITED)
    assert await post(api, acme, body(acme, phoneNumber="9876543214")) == (429, RATE_LIMITED)


async def test_rate_limit_exact_for_concurrent_requests(
    api: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """Ten requests at once against a limit of 4 (they are counted in groups): exactly four
    numbers are added, six requests are 429, and the minute counts ten."""
    await admin(
        api, "PATCH", "/accounts/acme/settings", {"rate_limits": {"ozonetel_add_per_minute": 4}}
    )
    await fresh_minute()
    answers = await asyncio.gather(
        *(post(api, acme, body(acme, phoneNumber=f"98765432{n:02d}")) for n in range(10))
    )
    assert sorted(status for status, _ in answers) == [200] * 4 + [429] * 6
    assert all(answer == RATE_LIMITED for status, answer in answers if status == 429)
    assert await count(pool) == 4
    assert await pool.fetchval("SELECT sum(hits) FROM rate_limit_windows") == 10


async def test_requests_of_one_key_are_read_checked_and_written_together(
    acme: Account, database_url: str, pool: asyncpg.Pool
) -> None:
    """Five requests of one key at once: one read of their contexts and one transaction, and
    each gets the answer it would get alone, in arrival order (a bad number, an unknown
    campaign and a duplicate of an earlier request among them); a later request is a group of
    its own that does not read the account's secret again, and reads the do-not-call entries
    with the holders of its number; each group's leads rows go in with its events."""
    statements: list[str] = []

    async def logged(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        conn.add_query_logger(lambda record: statements.append(record.query))

    asked = [
        body(acme, phoneNumber="9876500001"),
        body(acme, phoneNumber="12"),
        body(acme, campaignName="nowhere", phoneNumber="9876500002"),
        body(acme, phoneNumber="+919876500001", checkDuplicate=True),
        body(acme, campaignName="second", phoneNumber="9876500003"),
    ]
    async with asyncpg.create_pool(database_url, min_size=1, max_size=2, init=logged) as own:
        adds = AddCampaignDataGroups(own)
        outcomes = await asyncio.gather(
            *(
                adds.add(
                    api_key=acme.key,
                    body=msgspec.convert(b, AddCampaignData),
                    now=datetime.now(UTC),
                    origin=Origin(request_id=f"together-{n}"),
                )
                for n, b in enumerate(asked)
            )
        )
        later = await adds.add(
            api_key=acme.key,
            body=msgspec.convert(
                body(acme, phoneNumber="9876500004", checkDuplicate=True), AddCampaignData
            ),
            now=datetime.now(UTC),
            origin=Origin(request_id="later"),
        )
        await adds.close()
    assert later == Added("sales")
    # The account's secret is read by the first group only: it never changes.
    assert sum("FROM account_secrets" in s for s in statements) == 1
    assert outcomes == [
        Added("sales"),
        Refusal.BAD_PHONE,
        Refusal.UNKNOWN_CAMPAIGN,
        AlreadyExists(),
        Added("second"),
    ]
    assert sum("FROM credentials c" in s for s in statements) == 2  # a group each
    # Each group draws its ids with its rate-limit hits, before its transaction, whose BEGIN
    # takes the campaign locks.
    draws = [s for s in statements if "nextval('lead_ids')" in s]
    assert len(draws) == 2
    assert all("rate_limit_windows" in s for s in draws)
    locks = [s for s in statements if "pg_advisory_xact_lock(" in s]
    assert len(locks) == 2
    assert all(s.startswith("BEGIN") for s in locks)
    # A group writing to one campaign reads the do-not-call entries and the holders of the
    # numbers it checks in one statement; one writing to two reads each campaign's holders
    # apart.
    assert [("FROM dnc" in s, "FROM contacts" in s) for s in statements if "FROM dnc" in s] == [
        (True, False),
        (True, True),
    ]
    assert sum(s.startswith("BEGIN") for s in statements) == 2
    # Each group's new leads are projected by the statement that appends their events.
    projecting = [s for s in statements if "INSERT INTO public.leads" in s]
    assert len(projecting) == 2
    assert all("INSERT INTO events" in s for s in projecting)
    assert await count(pool) == 3


async def test_groups_of_two_processes_check_duplicates_exactly(
    acme: Account, database_url: str, pool: asyncpg.Pool
) -> None:
    """Two writers with pools of their own (two processes' groups) add the same numbers at the
    same moments, checking duplicates: each number goes in once, the other add is refused."""
    async with (
        asyncpg.create_pool(database_url, min_size=1, max_size=2, init=init_connection) as one,
        asyncpg.create_pool(database_url, min_size=1, max_size=2, init=init_connection) as two,
    ):
        writers = [AddCampaignDataGroups(one), AddCampaignDataGroups(two)]
        for round_ in range(12):
            phone = f"98765{round_:05d}"
            outcomes = await asyncio.gather(
                *(
                    writer.add(
                        api_key=acme.key,
                        body=msgspec.convert(
                            body(acme, phoneNumber=phone, checkDuplicate=True), AddCampaignData
                        ),
                        now=datetime.now(UTC),
                        origin=Origin(request_id=f"race-{round_}-{n}"),
                    )
                    for n, writer in enumerate(writers)
                )
            )
            assert sorted(map(repr, outcomes)) == sorted(
                [repr(Added("sales")), repr(AlreadyExists())]
            )
        for writer in writers:
            await writer.close()
    assert await count(pool) == 12


async def test_a_group_with_an_unknown_key_refuses_every_request(
    acme: Account, pool: asyncpg.Pool
) -> None:
    """Requests with a key that is no credential, together: each is Invalid User Details."""
    adds = AddCampaignDataGroups(pool)
    outcomes = await asyncio.gather(
        *(
            adds.add(
                api_key="not-a-key",
                body=msgspec.convert(body(acme, phoneNumber=f"98765000{n:02d}"), AddCampaignData),
                now=datetime.now(UTC),
                origin=Origin(),
            )
            for n in range(3)
        )
    )
    await adds.close()
    assert outcomes == [Refusal.INVALID_USER] * 3
    assert await count(pool) == 0


# --- 15: duplicates -------------------------------------------------------------------------------

EXISTS = {"status": "SUCCESS", "message": "Number Already Exist"}


@pytest.mark.parametrize("check", [True, "true", "TRUE", "True"])
async def test_check_duplicate_refuses_existing_number(
    api: Client, acme: Account, pool: asyncpg.Pool, check: object
) -> None:
    """checkDuplicate true (boolean or any-case text) with a live number: Number Already Exist."""
    assert await add(api, acme, Name="first") == added()
    status, answer = await post(
        api, acme, body(acme, Name="second", checkDuplicate=check), **{"X-Request-ID": "dup-1"}
    )
    assert (status, answer) == (200, EXISTS)
    assert [r["name"] for r in await leads(pool)] == ["first"]
    refusal = await pool.fetchrow(
        "SELECT type, data, account_id FROM events WHERE stream_id LIKE 'request-%-dup-1'"
    )
    assert refusal is not None
    assert refusal["type"] == "LeadRejected"
    assert b"duplicate phone number in campaign" in refusal["data"]


async def test_two_accounts_sending_one_request_id_record_their_refusals_apart(
    api: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """A caller chooses its X-Request-ID: the same one from two accounts names two streams,
    each holding its own account's refusal alone."""
    other = await make_account(api, "other")
    for account in (acme, other):
        assert await add(api, account, Name="first") == added()
        duplicate = body(account, Name="second", checkDuplicate=True)
        assert await post(api, account, duplicate, **{"X-Request-ID": "shared"}) == (200, EXISTS)
    streams = await pool.fetch(
        "SELECT stream_id, array_agg(DISTINCT account_id) AS accounts, count(*) AS events"
        " FROM events WHERE stream_id LIKE 'request-%' GROUP BY stream_id"
    )
    assert len(streams) == 2
    assert all((len(s["accounts"]), s["events"]) == (1, 1) for s in streams)


@pytest.mark.parametrize("check", [..., False, "false", "", "yes", None])
async def test_without_check_duplicate_the_number_is_added_again(
    api: Client, acme: Account, pool: asyncpg.Pool, check: object
) -> None:
    """checkDuplicate false, blank, missing or anything but true adds the duplicate anyway."""
    assert await add(api, acme) == added()
    assert await add(api, acme, checkDuplicate=check) == added()
    assert await count(pool) == 2


async def test_e164_duplicates_with_default_region(
    api: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """With region IN, +919876543210 and 09876543210 are one number for checkDuplicate."""
    assert await add(api, acme, phoneNumber="+919876543210") == added()
    assert await add(api, acme, phoneNumber="09876543210", checkDuplicate=True) == EXISTS
    assert await add(api, acme, phoneNumber="09876543210") == added()
    assert [r["dedupe_keys"] for r in await leads(pool)] == [["+919876543210"]] * 2


async def test_check_duplicate_is_per_campaign(
    api: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """The same number in another campaign is no duplicate."""
    assert await add(api, acme, checkDuplicate=True) == added()
    assert await add(api, acme, campaignName="second", checkDuplicate=True) == added("second")
    assert await add(api, acme, campaignName="second", checkDuplicate=True) == EXISTS
    assert await count(pool) == 2


async def test_duplicate_refusal_leaves_the_campaign_state(api: Client, acme: Account) -> None:
    """A refused duplicate adds nothing and does not apply its action either."""
    await add(api, acme)
    assert await add(api, acme, checkDuplicate=True, action="start") == EXISTS
    campaign = await admin(api, "GET", "/accounts/acme/campaigns/sales")
    assert campaign["state"] == "stopped"


async def test_added_lead_is_visible_in_the_native_api(api: Client, acme: Account) -> None:
    """A lead added here is found by GET /v1/leads?phone= with the account's native key."""
    assert await add(api, acme, phoneNumber="+919876543210", Name="Meera") == added()
    response = await api.get(
        "/v1/leads",
        params={"phone": "09876543210"},
        headers={"Authorization": f"Bearer {acme.native_key}"},
    )
    assert response.status == 200
    page = await response.json()
    [lead] = page["leads"]
    assert (lead["phone_numbers"], lead["name"]) == (["+919876543210"], "Meera")


# --- 16: the action -------------------------------------------------------------------------------


async def campaign_events(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch(
        "SELECT type FROM events WHERE type IN ('CampaignStarted', 'CampaignStopped')"
        " ORDER BY position"
    )
    return [r["type"] for r in rows]


@pytest.mark.parametrize("action", ["start", "START", "Start"])
async def test_action_start_starts_a_stopped_campaign(
    api: Client, acme: Account, pool: asyncpg.Pool, action: str
) -> None:
    """action start (any case) adds the number and starts the campaign: CampaignStarted."""
    answer = await add(api, acme, campaignName="skills", skill="billing", action=action)
    assert answer == {"status": "SUCCESS", "message": "SuccessFully Updated, IVR was started"}
    campaign = await admin(api, "GET", "/accounts/acme/campaigns/skills")
    assert campaign["state"] == "running"
    assert await campaign_events(pool) == ["CampaignStarted"]
    # The start and the lead are one transaction.
    xids = await pool.fetch(
        "SELECT DISTINCT transaction_id FROM events"
        " WHERE type IN ('CampaignStarted', 'LeadInserted')"
    )
    assert len(xids) == 1


async def test_action_start_on_a_running_campaign(
    api: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """A running campaign answers Campaign <name> Is Already Started and records no event."""
    await admin(api, "PATCH", "/accounts/acme/campaigns/sales", {"state": "running"})
    answer = await add(api, acme, action="start")
    assert answer == {"status": "Success", "message": "Campaign sales Is Already Started"}
    assert await campaign_events(pool) == ["CampaignStarted"]  # the PATCH's only
    assert await count(pool) == 1


async def test_action_stop_stops_a_running_campaign(
    api: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """action stop adds the number and stops a running campaign: CampaignStopped."""
    await admin(api, "PATCH", "/accounts/acme/campaigns/agents", {"state": "running"})
    answer = await add(api, acme, campaignName="agents", agentId="agent-1", action="stop")
    assert answer == {
        "status": "Success",
        "message": "SuccessFully Updated Preview Campaign Stoped",
    }
    campaign = await admin(api, "GET", "/accounts/acme/campaigns/agents")
    assert campaign["state"] == "stopped"
    assert await campaign_events(pool) == ["CampaignStarted", "CampaignStopped"]


async def test_action_stop_on_a_stopped_campaign(
    api: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """Stopping a stopped campaign answers like a stop, records no event, adds the number."""
    answer = await add(api, acme, action="STOP")
    assert answer == {
        "status": "Success",
        "message": "SuccessFully Updated Progressive Campaign Stoped",
    }
    assert await campaign_events(pool) == []
    assert await count(pool) == 1


@pytest.mark.parametrize("action", [..., None, "", "none", "restart"])
async def test_no_or_other_action(
    api: Client, acme: Account, pool: asyncpg.Pool, action: object
) -> None:
    """Without a start/stop action the number is added and the campaign left as it is."""
    assert await add(api, acme, action=action) == added()
    assert await campaign_events(pool) == []
    assert await count(pool) == 1


async def test_lead_event_metadata_names_the_ozonetel_credential(
    api: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """The LeadInserted event's actor is the ozonetel dialect, account and credential."""
    await post(api, acme, body(acme), **{"X-Request-ID": "req-42"})
    metadata = await pool.fetchval("SELECT metadata FROM events WHERE type = 'LeadInserted'")
    decoded = msgspec.json.decode(metadata)
    assert decoded["actor"]["dialect"] == "ozonetel"
    assert decoded["actor"]["credential_id"].startswith("cred_")
    assert decoded["request_id"] == "req-42"


# --- bodies that are not a JSON object ------------------------------------------------------------

MALFORMED = {"status": "error", "message": "Malformed JSON request body"}


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"not json", b"[1, 2]", b"null", b'"text"', b'{"phoneNumber": [1]}'],
)
async def test_malformed_body(api: Client, acme: Account, pool: asyncpg.Pool, raw: bytes) -> None:
    """Malformed JSON, a non-object or a non-scalar field is 400 in the vendor's shape."""
    response = await api.post(
        PATH, data=raw, headers={"apiKey": acme.key, "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert await response.json() == MALFORMED
    assert await count(pool) == 0


async def test_a_body_that_is_not_utf8_is_malformed_where_nothing_reads_it(
    api: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """A byte that is no UTF-8 in a member the route does not read still makes the body no
    JSON: 400 Malformed, nothing added (an otherwise valid lead)."""
    valid = msgspec.json.encode(body(acme, phoneNumber="9876543210"))
    for raw in (valid[:-1] + b', "note": "\xff"}', b'{"userName": "x", "a": "\xc3"}'):
        response = await api.post(
            PATH, data=raw, headers={"apiKey": acme.key, "Content-Type": "application/json"}
        )
        assert response.status == 400
        assert await response.json() == MALFORMED
    assert await count(pool) == 0


async def test_nul_in_free_text_is_dropped(api: Client, acme: Account, pool: asyncpg.Pool) -> None:
    """NUL, which PostgreSQL cannot store, is removed from Name rather than failing the request."""
    assert await add(api, acme, Name="Me\x00era", agentId="x\x00") == added()
    [lead] = await leads(pool)
    assert (lead["name"], lead["agent"]) == ("Meera", "x")


async def test_route_is_documented(api: Client, acme: Account) -> None:
    """The OpenAPI document has the route with its apiKey scheme and stays valid 3.1."""
    response = await api.get("/openapi.json", headers=ADMIN)
    document = await response.json()
    validate(document)
    operation = document["paths"][PATH]["post"]
    assert operation["security"] == [{"ozonetelApiKey": []}]
    assert document["components"]["securitySchemes"]["ozonetelApiKey"]["name"] == "apiKey"
    assert {"200", "400", "429"} <= set(operation["responses"])
