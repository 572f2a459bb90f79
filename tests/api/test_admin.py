"""The admin API through the real app on a real database: auth, every route, refusals, races."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
import pytest

from lead_ledger.api.app import create_app
from lead_ledger.api.auth import SELECT_CREDENTIAL, key_digest
from lead_ledger.ledger.events import DIALECTS
from lead_ledger.service.passwords import verify_password
from lead_ledger.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.support import Client

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PROBLEM = "application/problem+json"
DEFAULT_SETTINGS = {
    "api_authentication": "BASIC_AUTH",
    "default_region": None,
    "office_hours": None,
    "rate_limits": {
        "ozonetel_bulk_per_minute": 1,
        "ozonetel_add_per_minute": 100,
        "ozonetel_delete_per_minute": 100,
        "ozonetel_bulk_v4_per_minute": 5,
    },
}


@pytest.fixture
async def admin(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    """The real app, admin routes included (database_url first: it is torn down last)."""
    return await aiohttp_client(create_app(settings, database_url))


async def call(
    client: Client, method: str, path: str, body: object = None, *, raw: bytes | None = None
) -> tuple[int, Any]:
    data = raw if raw is not None else None if body is None else msgspec.json.encode(body)
    response = await client.request(method, path, data=data, headers=AUTH)
    text = await response.read()
    if response.status >= 400:
        assert response.content_type == PROBLEM
    return response.status, msgspec.json.decode(text) if text else None


async def make_account(client: Client, name: str = "acme", **extra: object) -> dict[str, Any]:
    status, body = await call(client, "POST", "/v1/admin/accounts", {"name": name, **extra})
    assert status == 201, body
    result: dict[str, Any] = body
    return result


async def events_of(pool: asyncpg.Pool, account_id: int) -> list[tuple[str, Any, Any]]:
    rows = await pool.fetch(
        "SELECT type, data, metadata FROM events WHERE stream_id = $1 ORDER BY stream_version",
        f"account-{account_id}",
    )
    return [
        (r["type"], msgspec.json.decode(r["data"]), msgspec.json.decode(r["metadata"]))
        for r in rows
    ]


async def refused(client: Client, method: str, path: str, body: object) -> str | None:
    """Send a body that must be refused: 400 problem+json; the field the problem names."""
    response = await client.request(method, path, json=body, headers=AUTH)
    assert (response.status, response.content_type) == (400, PROBLEM), await response.text()
    problem = await response.json()
    assert (problem["status"], problem["title"]) == (400, "Invalid request body")
    field: str | None = problem.get("field")
    return field


# --- auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Token {ADMIN_TOKEN}"}],
)
async def test_missing_or_wrong_token_is_401_problem(
    admin: Client, headers: dict[str, str]
) -> None:
    """Without the admin bearer token every admin route answers 401 problem+json."""
    response = await admin.get("/v1/admin/accounts", headers=headers)
    assert response.status == 401
    assert response.content_type == PROBLEM
    assert (await response.json())["status"] == 401


async def test_admin_api_is_off_without_a_configured_token(
    database_url: str, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    """With LEDGER_ADMIN_TOKEN unset no token gets in, not even an empty one, and the 401 says
    that the admin API is off rather than asking for a token nobody could send."""
    app = create_app(Settings(admin_token=None, db_pool_min=1, db_pool_max=2), database_url)
    client = await aiohttp_client(app)
    for header in (f"Bearer {ADMIN_TOKEN}", "Bearer ", "Bearer None"):
        response = await client.post(
            "/v1/admin/accounts", json={"name": "x"}, headers={"Authorization": header}
        )
        assert response.status == 401
        detail = (await response.json(content_type=None))["detail"]
        assert detail.startswith("the admin API is off: this server has no LEDGER_ADMIN_TOKEN")


# --- accounts -----------------------------------------------------------------------------------


async def test_create_account_answers_201_with_default_settings(
    admin: Client, pool: asyncpg.Pool
) -> None:
    """POST accounts records AccountCreated by the admin and answers id, name and settings."""
    body = await make_account(admin, "acme", default_region="in")
    assert {
        "name": body["name"],
        "settings": body["settings"],
    } == {"name": "acme", "settings": DEFAULT_SETTINGS | {"default_region": "IN"}}
    [(kind, data, metadata)] = await events_of(pool, body["id"])
    assert (kind, data["name"]) == ("AccountCreated", "acme")
    assert metadata["actor"] == {"dialect": "admin"}
    assert metadata["request_id"]


async def test_accounts_are_listed_and_shown_by_name_or_id(admin: Client) -> None:
    """GET accounts lists them; GET accounts/{account} takes the name (any case) or the id."""
    first = await make_account(admin, "acme")
    second = await make_account(admin, "globex")
    status, listed = await call(admin, "GET", "/v1/admin/accounts")
    assert (200, [first, second]) == (status, listed["accounts"])
    for ref in ("ACME", str(first["id"])):
        status, shown = await call(admin, "GET", f"/v1/admin/accounts/{ref}")
        assert (200, first["id"], []) == (status, shown["id"], shown["campaigns"])


async def test_account_names_are_unique_case_insensitively(admin: Client) -> None:
    """A second account named like the first in another case is a 409 conflict."""
    await make_account(admin, "Acme")
    status, body = await call(admin, "POST", "/v1/admin/accounts", {"name": "ACME"})
    assert (status, body["status"]) == (409, 409)


async def test_unknown_account_is_404_on_every_account_route(admin: Client) -> None:
    """Reads and writes naming a missing account answer 404 problem+json."""
    cases = [
        ("GET", "/v1/admin/accounts/nope", None),
        ("GET", "/v1/admin/accounts/99999999999999999999999", None),
        ("POST", "/v1/admin/accounts/nope/credentials", {"api": "native"}),
        ("DELETE", "/v1/admin/accounts/nope/credentials/cred_x", None),
        ("POST", "/v1/admin/accounts/nope/users", {"username": "u", "password": "p" * 8}),
        ("POST", "/v1/admin/accounts/nope/agents", {"agent_id": "a"}),
        ("POST", "/v1/admin/accounts/nope/skills", {"name": "s"}),
        ("POST", "/v1/admin/accounts/nope/campaigns", {"name": "c"}),
        ("GET", "/v1/admin/accounts/nope/campaigns", None),
        ("PATCH", "/v1/admin/accounts/nope/settings", {}),
        ("GET", "/v1/admin/accounts/nope/settings", None),
    ]
    statuses = [(await call(admin, method, path, body))[0] for method, path, body in cases]
    assert [404] * len(cases) == statuses


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"name": "acme", "color": "red"}', "color"),
        (b'{"name": 5}', "name"),
        (b'{"name": ""}', "name"),
        (b'{"name": "a/b"}', "name"),
        (b'{"name": "123"}', "name"),
        (b'{"name": "acme", "default_region": "XX"}', "default_region"),
        # A dotless i upper-cases to I: no region is spelled with it.
        ('{"name": "acme", "default_region": "\u0131n"}'.encode(), "default_region"),
        (b"{}", "name"),
        (b'{"default_region": "IN"}', "name"),
        (b'{"name": "acme"', None),
        (b"", None),
        (b"[1, 2]", None),
    ],
)
async def test_bad_account_bodies_are_400_naming_the_field(
    admin: Client, raw: bytes, field: str | None
) -> None:
    """Unknown fields, wrong types, bad names and malformed JSON are 400 problems."""
    status, body = await call(admin, "POST", "/v1/admin/accounts", raw=raw)
    assert status == 400
    assert field == body.get("field")
    assert "Traceback" not in body.get("detail", "")


# --- credentials --------------------------------------------------------------------------------


async def test_credentials_work_only_for_their_own_dialect(
    admin: Client, pool: asyncpg.Pool
) -> None:
    """Each issued key is stored as its SHA-256 and matches its dialect and no other."""
    account = await make_account(admin)
    for dialect in DIALECTS:
        status, issued = await call(
            admin, "POST", "/v1/admin/accounts/acme/credentials", {"api": dialect}
        )
        assert (201, dialect) == (status, issued["api"])
        matches = {
            other
            for other in DIALECTS
            if await pool.fetchrow(SELECT_CREDENTIAL, key_digest(issued["key"]), other)
        }
        assert {dialect} == matches
    _, shown = await call(admin, "GET", f"/v1/admin/accounts/{account['id']}")
    assert list(DIALECTS) == [c["api"] for c in shown["credentials"]]
    assert {"api", "id", "revoked", "username"} == set(shown["credentials"][0])
    assert [c["username"] for c in shown["credentials"]] == [None] * len(DIALECTS)


async def test_revoke_credential_is_204_and_the_key_stops_working(
    admin: Client, pool: asyncpg.Pool
) -> None:
    """DELETE revokes (204, also when repeated); an unknown credential id is 404."""
    await make_account(admin)
    _, issued = await call(admin, "POST", "/v1/admin/accounts/acme/credentials", {"api": "jtel"})
    path = f"/v1/admin/accounts/acme/credentials/{issued['id']}"
    assert (
        (await call(admin, "DELETE", path))[0],
        (await call(admin, "DELETE", path))[0],
    ) == (204, 204)
    assert await pool.fetchrow(SELECT_CREDENTIAL, key_digest(issued["key"]), "jtel") is None
    _, shown = await call(admin, "GET", "/v1/admin/accounts/acme")
    assert [c["revoked"] for c in shown["credentials"]] == [True]
    assert (await call(admin, "DELETE", path + "x"))[0] == 404


async def test_unknown_dialect_is_400(admin: Client) -> None:
    """A credential for an API the ledger does not speak is refused, naming `api`."""
    await make_account(admin)
    status, body = await call(admin, "POST", "/v1/admin/accounts/acme/credentials", {"api": "x"})
    assert (status, body["field"]) == (400, "api")


# --- users, agents, skills ----------------------------------------------------------------------


async def test_users_are_unique_across_accounts_and_never_show_their_hash(
    admin: Client, pool: asyncpg.Pool
) -> None:
    """POST users stores an scrypt hash; the same username in another account is 409."""
    await make_account(admin, "acme")
    await make_account(admin, "globex")
    user = {"username": "asha", "password": "correct horse"}
    status, body = await call(admin, "POST", "/v1/admin/accounts/acme/users", user)
    assert (status, body) == (201, {"username": "asha", "account": "acme"})
    assert (await call(admin, "POST", "/v1/admin/accounts/globex/users", user))[0] == 409
    stored = await pool.fetchval("SELECT password_hash FROM users WHERE username = 'asha'")
    assert (
        verify_password("correct horse", stored),
        verify_password("wrong horse", stored),
    ) == (True, False)
    response = await admin.get("/v1/admin/accounts/acme", headers=AUTH)
    assert "scrypt" not in await response.text()
    assert (await response.json())["users"] == [{"username": "asha", "account": "acme"}]


async def test_short_password_is_400(admin: Client) -> None:
    """Passwords shorter than 8 characters are refused, naming `password`."""
    await make_account(admin)
    body = {"username": "asha", "password": "short"}
    status, problem = await call(admin, "POST", "/v1/admin/accounts/acme/users", body)
    assert (status, problem["field"]) == (400, "password")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "agent_id"),
        ({"name": "Asha"}, "agent_id"),
        ({"agent_id": 5}, "agent_id"),
        ({"agent_id": None}, "agent_id"),
        ({"agent_id": ["a1"]}, "agent_id"),
        ({"agent_id": "a1", "name": 5}, "name"),
        ({"agent_id": ""}, "agent_id"),
        ({"agent_id": "a/1"}, "agent_id"),
        ({"agent_id": "a1", "skill": "sales"}, "skill"),
    ],
)
async def test_bad_agent_bodies_are_400_naming_the_field(
    admin: Client, pool: asyncpg.Pool, body: dict[str, object], field: str
) -> None:
    """A missing agent_id, a wrong type, a bad name or an unknown field is refused by name."""
    account = await make_account(admin)
    assert field == await refused(admin, "POST", "/v1/admin/accounts/acme/agents", body)
    assert [kind for kind, _, _ in await events_of(pool, account["id"])] == ["AccountCreated"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": 5}, "name"),
        ({"name": None}, "name"),
        ({"name": ["sales"]}, "name"),
        ({"name": ""}, "name"),
        ({"name": " sales"}, "name"),
        ({"name": "sales", "agent_id": "a1"}, "agent_id"),
    ],
)
async def test_bad_skill_bodies_are_400_naming_the_field(
    admin: Client, pool: asyncpg.Pool, body: dict[str, object], field: str
) -> None:
    """A missing name, a wrong type, a bad name or an unknown field is refused by name."""
    account = await make_account(admin)
    assert field == await refused(admin, "POST", "/v1/admin/accounts/acme/skills", body)
    assert [kind for kind, _, _ in await events_of(pool, account["id"])] == ["AccountCreated"]


async def test_agents_and_skills_are_unique_per_account(admin: Client) -> None:
    """Agents and skills are added once per account; another account may reuse the names."""
    await make_account(admin, "acme")
    await make_account(admin, "globex")
    agent = {"agent_id": "a1", "name": "Asha"}
    statuses = [
        (await call(admin, "POST", "/v1/admin/accounts/acme/agents", agent))[0],
        (await call(admin, "POST", "/v1/admin/accounts/acme/agents", agent))[0],
        (await call(admin, "POST", "/v1/admin/accounts/globex/agents", agent))[0],
        (await call(admin, "POST", "/v1/admin/accounts/acme/skills", {"name": "sales"}))[0],
        (await call(admin, "POST", "/v1/admin/accounts/acme/skills", {"name": "sales"}))[0],
        (await call(admin, "POST", "/v1/admin/accounts/globex/skills", {"name": "sales"}))[0],
    ]
    assert statuses == [201, 409, 201, 201, 409, 201]
    _, shown = await call(admin, "GET", "/v1/admin/accounts/acme")
    assert ([agent], [{"name": "sales"}]) == (shown["agents"], shown["skills"])


# --- campaigns ----------------------------------------------------------------------------------


async def test_create_campaign_applies_defaults_and_global_ids(admin: Client) -> None:
    """Campaigns default to outbound/none/Progressive/stopped; ids grow across accounts."""
    await make_account(admin, "acme")
    await make_account(admin, "globex")
    _, first = await call(admin, "POST", "/v1/admin/accounts/acme/campaigns", {"name": "Sales"})
    status, second = await call(
        admin,
        "POST",
        "/v1/admin/accounts/globex/campaigns",
        {"name": "Sales", "direction": "inbound", "crm_fields": ["customer:id"]},
    )
    assert {
        "id": first["id"],
        "name": "Sales",
        "direction": "outbound",
        "assignment": "none",
        "dial_mode": "Progressive",
        "state": "stopped",
        "crm_fields": None,
        "vicidial_campaign": None,
    } == first
    assert (201, first["id"] + 1, "inbound", ["customer:id"]) == (
        status,
        second["id"],
        second["direction"],
        second["crm_fields"],
    )
    status, listed = await call(admin, "GET", "/v1/admin/accounts/acme/campaigns")
    assert (200, [first]) == (status, listed["campaigns"])


async def test_campaign_names_are_unique_per_account(admin: Client) -> None:
    """A second campaign with the same name in one account is 409."""
    await make_account(admin)
    path = "/v1/admin/accounts/acme/campaigns"
    statuses = [(await call(admin, "POST", path, {"name": "Sales"}))[0] for _ in range(2)]
    assert statuses == [201, 409]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "dial_mode": "Manual"}, "dial_mode"),
        ({"name": "x", "assignment": "teamwise"}, "assignment"),
        ({"name": "x", "crm_fields": ["no_section"]}, "crm_fields[0]"),
        ({"name": "x", "crm_fields": ["a:b", "a:b"]}, "crm_fields"),
        ({"name": "x", "owner": "me"}, "owner"),
    ],
)
async def test_bad_campaign_bodies_are_400(
    admin: Client, body: dict[str, object], field: str
) -> None:
    """Unknown enum values, bad crm field names and unknown fields name the field."""
    await make_account(admin)
    status, problem = await call(admin, "POST", "/v1/admin/accounts/acme/campaigns", body)
    assert (400, field) == (status, problem["field"])


async def test_patch_campaign_records_the_whole_config_and_what_changed(
    admin: Client, pool: asyncpg.Pool
) -> None:
    """PATCH records CampaignUpdated with the new config; state alone is CampaignStarted."""
    account = await make_account(admin)
    _, created = await call(admin, "POST", "/v1/admin/accounts/acme/campaigns", {"name": "Sales"})
    status, updated = await call(
        admin,
        "PATCH",
        "/v1/admin/accounts/acme/campaigns/Sales",
        {"name": "Sales2", "dial_mode": "Predictive", "crm_fields": ["a:b"]},
    )
    assert (
        200,
        created | {"name": "Sales2", "dial_mode": "Predictive", "crm_fields": ["a:b"]},
    ) == (
        status,
        updated,
    )
    _, started = await call(
        admin, "PATCH", "/v1/admin/accounts/acme/campaigns/Sales2", {"state": "running"}
    )
    _, unchanged = await call(
        admin, "PATCH", "/v1/admin/accounts/acme/campaigns/Sales2", {"state": "running"}
    )
    assert ("running", started) == (started["state"], unchanged)
    recorded = [
        (kind, data.get("changed")) for kind, data, _ in await events_of(pool, account["id"])
    ]
    assert recorded == [
        ("AccountCreated", None),
        ("CampaignCreated", None),
        ("CampaignUpdated", ["name", "dial_mode", "crm_fields"]),
        ("CampaignStarted", None),
    ]
    _, shown = await call(admin, "GET", "/v1/admin/accounts/acme/campaigns/Sales2")
    assert started == shown


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"direction": "sideways"}, "direction"),
        ({"assignment": "teamwise"}, "assignment"),
        ({"dial_mode": "Manual"}, "dial_mode"),
        ({"dial_mode": "progressive"}, "dial_mode"),
        ({"state": "paused"}, "state"),
        ({"state": True}, "state"),
        ({"direction": None}, "direction"),
        ({"name": 5}, "name"),
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": "a/b"}, "name"),
        ({"crm_fields": "a:b"}, "crm_fields"),
        ({"crm_fields": [1]}, "crm_fields[0]"),
        ({"crm_fields": ["a:b", "no_section"]}, "crm_fields[1]"),
        ({"state": "running", "owner": "me"}, "owner"),
        ({"id": 7}, "id"),
    ],
)
async def test_bad_campaign_patches_are_400_naming_the_field(
    admin: Client, pool: asyncpg.Pool, body: dict[str, object], field: str
) -> None:
    """PATCH campaigns: enum values, types and unknown fields are refused by name; the
    campaign stays as it was and nothing is recorded."""
    account = await make_account(admin)
    _, created = await call(admin, "POST", "/v1/admin/accounts/acme/campaigns", {"name": "Sales"})
    path = "/v1/admin/accounts/acme/campaigns/Sales"
    assert field == await refused(admin, "PATCH", path, body)
    assert (200, created) == await call(admin, "GET", path)
    kinds = [kind for kind, _, _ in await events_of(pool, account["id"])]
    assert kinds == ["AccountCreated", "CampaignCreated"]


async def test_patch_unknown_campaign_is_404_and_rename_onto_another_is_409(
    admin: Client,
) -> None:
    """PATCH on a missing campaign is 404; renaming onto a taken name is 409."""
    await make_account(admin)
    for name in ("One", "Two"):
        await call(admin, "POST", "/v1/admin/accounts/acme/campaigns", {"name": name})
    path = "/v1/admin/accounts/acme/campaigns"
    assert (
        (await call(admin, "PATCH", f"{path}/Three", {"state": "running"}))[0],
        (await call(admin, "PATCH", f"{path}/One", {"name": "Two"}))[0],
    ) == (404, 409)


# --- settings -----------------------------------------------------------------------------------


async def test_settings_patch_changes_only_the_fields_given(
    admin: Client, pool: asyncpg.Pool
) -> None:
    """PATCH settings answers all settings and records SettingsChanged with what changed."""
    account = await make_account(admin)
    office_hours = {"timezone": "Asia/Kolkata", "days": [5, 1, 1], "start": "09:30", "end": "18:00"}
    status, body = await call(
        admin,
        "PATCH",
        "/v1/admin/accounts/acme/settings",
        {"office_hours": office_hours, "default_region": "IN", "rate_limits": {}},
    )
    expected = DEFAULT_SETTINGS | {
        "default_region": "IN",
        "office_hours": office_hours | {"days": [1, 5]},
    }
    assert (200, expected) == (status, body)
    assert (200, expected) == await call(admin, "GET", "/v1/admin/accounts/acme/settings")
    _, cleared = await call(
        admin,
        "PATCH",
        "/v1/admin/accounts/acme/settings",
        {"office_hours": None, "api_authentication": "TOKEN_AUTH"},
    )
    assert expected | {"office_hours": None, "api_authentication": "TOKEN_AUTH"} == cleared
    changes = [data["changed"] for _, data, _ in (await events_of(pool, account["id"]))[1:]]
    assert changes == [["default_region", "office_hours"], ["api_authentication", "office_hours"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "office_hours": {
                    "timezone": "Mars/Olympus",
                    "days": [1],
                    "start": "09:00",
                    "end": "17:00",
                }
            },
            "office_hours.timezone",
        ),
        (
            {"office_hours": {"timezone": "UTC", "days": [8], "start": "09:00", "end": "17:00"}},
            "office_hours.days[0]",
        ),
        (
            {"office_hours": {"timezone": "UTC", "days": [1], "start": "9am", "end": "17:00"}},
            "office_hours.start",
        ),
        (
            {"office_hours": {"timezone": "UTC", "days": [1], "start": "09:00", "end": "09:00"}},
            "office_hours.end",
        ),
        ({"rate_limits": {"ozonetel_bulk_per_minute": 0}}, "rate_limits.ozonetel_bulk_per_minute"),
        ({"api_authentication": "OAUTH"}, "api_authentication"),
        ({"default_region": "ZZ"}, "default_region"),
        ({"timezone": "UTC"}, "timezone"),
        (
            {
                "office_hours": {
                    "timezone": "UTC",
                    "days": [1],
                    "start": "09:00",
                    "end": "17:00",
                    "lunch": "13:00",
                }
            },
            "office_hours.lunch",
        ),
        ({"rate_limits": {"per_hour": 5}}, "rate_limits.per_hour"),
        (
            {"office_hours": {"timezone": "UTC", "days": [1], "start": "09:00"}},
            "office_hours.end",
        ),
    ],
)
async def test_bad_settings_are_400_naming_the_field(
    admin: Client, body: dict[str, object], field: str
) -> None:
    """Unknown zones, weekdays, clock times, limits and fields are refused by name."""
    await make_account(admin)
    status, problem = await call(admin, "PATCH", "/v1/admin/accounts/acme/settings", body)
    assert (400, field) == (status, problem["field"])


# --- concurrency --------------------------------------------------------------------------------


async def test_concurrent_duplicates_yield_exactly_one_winner(admin: Client) -> None:
    """Racing creates of one account name, username or campaign name: one 201, the rest 409."""
    racers = 8

    async def race(path: str, body: dict[str, object]) -> list[int]:
        results = await asyncio.gather(*(call(admin, "POST", path, body) for _ in range(racers)))
        return sorted(status for status, _ in results)

    expected = [201] + [409] * (racers - 1)
    assert expected == await race("/v1/admin/accounts", {"name": "acme"})
    assert expected == await race(
        "/v1/admin/accounts/acme/users", {"username": "asha", "password": "p" * 8}
    )
    assert expected == await race("/v1/admin/accounts/acme/campaigns", {"name": "Sales"})


async def test_concurrent_distinct_writes_to_one_account_all_succeed(
    admin: Client, pool: asyncpg.Pool
) -> None:
    """Parallel writes to one account stream are serialised, never a version clash (500)."""
    account = await make_account(admin)
    results = await asyncio.gather(
        *(
            call(admin, "POST", "/v1/admin/accounts/acme/agents", {"agent_id": f"a{i}"})
            for i in range(10)
        )
    )
    assert [status for status, _ in results] == [201] * 10
    assert len(await events_of(pool, account["id"])) == 11


async def test_rate_limits_merge_and_stopping_records_campaign_stopped(
    admin: Client, pool: asyncpg.Pool
) -> None:
    """A rate limit left out keeps its value; setting state stopped records CampaignStopped."""
    account = await make_account(admin)
    _, limits = await call(
        admin,
        "PATCH",
        "/v1/admin/accounts/acme/settings",
        {"rate_limits": {"ozonetel_add_per_minute": 60}},
    )
    assert limits["rate_limits"] == {
        "ozonetel_bulk_per_minute": 1,
        "ozonetel_add_per_minute": 60,
        "ozonetel_delete_per_minute": 100,
        "ozonetel_bulk_v4_per_minute": 5,
    }
    body = {"name": "Sales", "state": "running"}
    await call(admin, "POST", "/v1/admin/accounts/acme/campaigns", body)
    path = "/v1/admin/accounts/acme/campaigns/Sales"
    _, stopped = await call(admin, "PATCH", path, {"state": "stopped"})
    assert stopped["state"] == "stopped"
    kinds = [kind for kind, _, _ in await events_of(pool, account["id"])]
    assert kinds == ["AccountCreated", "SettingsChanged", "CampaignCreated", "CampaignStopped"]


async def test_nul_characters_are_refused_or_not_found_never_500(admin: Client) -> None:
    """PostgreSQL text cannot hold NUL: in a path it names nothing, in a body it is a 400."""
    await make_account(admin)
    await call(admin, "POST", "/v1/admin/accounts/acme/campaigns", {"name": "Sales"})
    base = "/v1/admin/accounts"
    cases: list[tuple[str, str, object]] = [
        ("GET", f"{base}/ac%00me", None),
        ("PATCH", f"{base}/acme/campaigns/Sa%00les", {}),
        ("DELETE", f"{base}/acme/credentials/c%00x", None),
        ("POST", f"{base}/acme/agents", {"agent_id": "a\x00"}),
        ("POST", f"{base}/acme/agents", {"agent_id": "a", "name": "\x00"}),
        ("PATCH", f"{base}/acme/campaigns/Sales", {"crm_fields": ["a:\x00"]}),
        ("POST", f"{base}/acme/users", {"username": "u", "password": "\x00" * 8}),
    ]
    statuses = [(await call(admin, method, path, body))[0] for method, path, body in cases]
    assert statuses == [404, 404, 404, 400, 400, 400, 201]


# --- the OpenAPI document -----------------------------------------------------------------------


async def test_every_admin_route_is_documented_with_its_body_answers_and_refusals(
    admin: Client,
) -> None:
    """/openapi.json has each admin route behind the admin token, with its request body, its
    answer's schema and the problems it answers with (400 only where there is a body)."""
    response = await admin.get("/openapi.json", headers=AUTH)
    document = await response.json()
    operations = {
        f"{method.upper()} {path}": op
        for path, methods in document["paths"].items()
        if path.startswith("/v1/admin/")
        for method, op in methods.items()
    }
    assert len(operations) == 14
    for name, op in operations.items():
        assert op["security"] == [{"adminToken": []}], name
        assert op["tags"] == ["admin"], name
        assert ("requestBody" in op) == ("400" in op["responses"]), name
        for status, answer in op["responses"].items():
            if int(status) >= 400:
                assert PROBLEM in answer["content"], name
    schemas = document["components"]["schemas"]
    create = operations["POST /v1/admin/accounts"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NewAccount"
    }
    assert set(create["responses"]) == {"201", "400", "401", "409"}
    assert schemas["NewAccount"]["additionalProperties"] is False
    issued = operations["POST /v1/admin/accounts/{account}/credentials"]["responses"]["201"]
    assert issued["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/IssuedCredential"
    }
    listed = operations["GET /v1/admin/accounts"]["responses"]["200"]["content"]
    assert schemas["AccountList"]["properties"]["accounts"]["items"] == {
        "$ref": "#/components/schemas/Account"
    }
    assert listed["application/json"]["schema"] == {"$ref": "#/components/schemas/AccountList"}
    revoke = operations["DELETE /v1/admin/accounts/{account}/credentials/{credential_id}"]
    assert ("content" not in revoke["responses"]["204"], {"401", "404"}) == (
        True,
        set(revoke["responses"]) - {"204"},
    )
    assert [p["name"] for p in revoke["parameters"]] == ["account", "credential_id"]
