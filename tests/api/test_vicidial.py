"""TForge's Vicidial lead archive API through the real app: every response of seed 003, the
dearchive route, office hours, safe deletes, isolation and the round trip."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import pytest
from openapi_spec_validator import validate

from lead_ledger.api.app import create_app
from lead_ledger.api.auth import key_digest
from lead_ledger.api.keys import CLOCK
from lead_ledger.ledger.envelope import ANY_VERSION, Actor
from lead_ledger.ledger.events import (
    AccountSettings,
    CredentialIssued,
    Dialect,
    DomainEvent,
    LeadFields,
    OfficeHours,
    SettingsChanged,
    stream_of_account,
)
from lead_ledger.service import lead_inserts, leads
from lead_ledger.service.writer import Context, record, stream_append
from lead_ledger.settings import Settings
from tests.factories import ADMIN, make_account, make_campaign
from tests.support import Client

ARCHIVE, DEARCHIVE = "/vicidial/leads/archive", "/vicidial/leads/dearchive"
HOURS = OfficeHours(timezone="Asia/Kolkata", days=[1, 2, 3, 4, 5], start="09:00", end="18:00")
INSIDE = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)  # Monday 10:30 in Kolkata
OUTSIDE = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # Monday 19:30 in Kolkata
ALL = {"insert_leads": True, "update_leads": True, "delete_leads": True}
OK = "lead_ids batch was successfully processed"

MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def make_client(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> MakeClient:
    """Starts the app, optionally with a fixed clock (set before the app starts)."""

    async def start(clock: datetime | None = None, max_body_bytes: int | None = None) -> Client:
        limit = max_body_bytes or settings.max_body_bytes
        app = create_app(msgspec.structs.replace(settings, max_body_bytes=limit), database_url)
        if clock is not None:
            app[CLOCK] = lambda: clock
        return await aiohttp_client(app)

    return start


@pytest.fixture
async def api(make_client: MakeClient) -> Client:
    return await make_client()


class Account(msgspec.Struct, frozen=True):
    account_id: int
    campaign_id: int
    key: str
    native_key: str


async def write(pool: asyncpg.Pool, account_id: int, events: list[DomainEvent]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        stream = stream_of_account(account_id)
        append = stream_append(ADMIN, stream, ANY_VERSION, events, account_id=account_id)
        await record(conn, [append])


async def account(
    pool: asyncpg.Pool, name: str = "acme", hours: OfficeHours | None = None
) -> Account:
    """An account with a campaign, a vicidial and a native key, and optional office hours."""
    account_id = await make_account(pool, name)
    campaign_id = await make_campaign(pool, account_id, f"{name}-sales")
    keys: dict[Dialect, str] = {"vicidial": f"vici-{name}", "native": f"native-{name}"}
    events: list[DomainEvent] = [
        CredentialIssued(
            account_id=account_id,
            credential_id=f"{dialect}-{name}",
            dialect=dialect,
            key_sha256=key_digest(key),
        )
        for dialect, key in keys.items()
    ]
    if hours is not None:
        settings = AccountSettings(default_region="IN", office_hours=hours)
        events.append(
            SettingsChanged(account_id=account_id, settings=settings, changed=["office_hours"])
        )
    await write(pool, account_id, events)
    return Account(account_id, campaign_id, keys["vicidial"], keys["native"])


def ctx(acct: Account) -> Context:
    return Context(actor=Actor(dialect="native", account_id=acct.account_id), request_id="t")


async def add_leads(pool: asyncpg.Pool, acct: Account, count: int, start: int = 0) -> list[int]:
    rows = [
        LeadFields(phone_numbers=[f"+9198{start + i:08d}"], name=f"Lead {start + i}")
        for i in range(count)
    ]
    async with pool.acquire() as conn, conn.transaction():
        result = await lead_inserts.insert_leads(
            conn,
            ctx(acct),
            account_id=acct.account_id,
            campaign_id=acct.campaign_id,
            rows=rows,
            check_duplicates=False,
        )
    return [result.inserted[i] for i in range(count)]


async def post(
    api: Client, path: str, body: object, key: str, *, raw: bytes | None = None
) -> tuple[int, Any]:
    data = raw if raw is not None else msgspec.json.encode(body)
    headers = {"Authorization": f"Key={key}", "Content-Type": "application/json"}
    response = await api.post(path, data=data, headers=headers)
    assert response.content_type == "application/json"
    return response.status, msgspec.json.decode(await response.read())


def counts(select: int, insert: int, update: int, delete: int) -> dict[str, Any]:
    return {
        "message": OK,
        "select_count": select,
        "insert_count": insert,
        "update_count": update,
        "delete_count": delete,
    }


def errors(message: str, lead_ids: list[Any] | None = None) -> dict[str, Any]:
    ids = lead_ids or []
    return {"message": message, "lead_errors": len(ids), "lead_ids": ids}


async def archived_ids(pool: asyncpg.Pool) -> list[int]:
    return [r["lead_id"] for r in await pool.fetch("SELECT lead_id FROM lead_archive ORDER BY 1")]


async def live_ids(pool: asyncpg.Pool) -> list[int]:
    return [r["lead_id"] for r in await pool.fetch("SELECT lead_id FROM leads ORDER BY 1")]


# --- 200 ------------------------------------------------------------------------------------------


async def test_archive_inserts_and_safely_deletes(api: Client, pool: asyncpg.Pool) -> None:
    """The seed's 200: one lead archived and deleted from live, with the seed's counts."""
    acct = await account(pool)
    [lead] = await add_leads(pool, acct, 1)
    status, body = await post(api, ARCHIVE, {**ALL, "lead_ids": [lead]}, acct.key)
    assert (status, body) == (200, counts(1, 1, 0, 1))
    assert await live_ids(pool) == []
    assert await archived_ids(pool) == [lead]
    deleted = await pool.fetchrow(
        "SELECT data, metadata FROM events WHERE type = 'LeadDeleted' AND stream_id = $1",
        f"lead-{lead}",
    )
    assert deleted is not None
    assert msgspec.json.decode(deleted["data"])["reason"] == "archived"
    assert msgspec.json.decode(deleted["data"])["archive_version"] == 2
    assert msgspec.json.decode(deleted["metadata"])["actor"]["dialect"] == "vicidial"


# --- 401 / 403 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Key=wrong", "Key=native-acme", "Bearer vici-acme", "vici-acme", "Key="],
)
async def test_unknown_or_foreign_keys_are_401(
    api: Client, pool: asyncpg.Pool, authorization: str | None
) -> None:
    """No key, a wrong key, another dialect's key or another scheme: the seed's 401."""
    acct = await account(pool)
    [lead] = await add_leads(pool, acct, 1)
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in (ARCHIVE, DEARCHIVE):
        response = await api.post(path, json={**ALL, "lead_ids": [lead]}, headers=headers)
        assert response.status == 401
        assert await response.json() == {"message": "unable to validate api user"}
    assert await live_ids(pool) == [lead]


async def test_archive_is_refused_during_office_hours(
    make_client: MakeClient, pool: asyncpg.Pool
) -> None:
    """Inside the account's office hours archive answers the seed's 403 and changes nothing."""
    api = await make_client(INSIDE)
    acct = await account(pool, hours=HOURS)
    [lead] = await add_leads(pool, acct, 1)
    status, body = await post(api, ARCHIVE, {**ALL, "lead_ids": [lead]}, acct.key)
    assert (status, body) == (403, {"message": ARCHIVE_403})
    assert await archived_ids(pool) == []


ARCHIVE_403 = "api cannot be executed during office hours time condition"
DEARCHIVE_403 = "api can only be executed during office hours time condition"


async def test_office_hours_gate_both_routes_the_opposite_way(
    make_client: MakeClient, pool: asyncpg.Pool
) -> None:
    """Outside hours archive runs and dearchive is refused; inside, the reverse."""
    outside = await make_client(OUTSIDE)
    acct = await account(pool, hours=HOURS)
    [lead] = await add_leads(pool, acct, 1)
    body = {"insert_leads": True, "delete_leads": True, "lead_ids": [lead]}
    assert await post(outside, ARCHIVE, {**ALL, "lead_ids": [lead]}, acct.key) == (
        200,
        counts(1, 1, 0, 1),
    )
    assert await post(outside, DEARCHIVE, body, acct.key) == (403, {"message": DEARCHIVE_403})
    inside = await make_client(INSIDE)
    assert await post(inside, DEARCHIVE, body, acct.key) == (200, counts(1, 1, 0, 1))
    assert await live_ids(pool) == [lead]


async def test_without_office_hours_both_routes_always_run(
    make_client: MakeClient, pool: asyncpg.Pool
) -> None:
    """An account without office hours may archive and dearchive at any time."""
    api = await make_client(INSIDE)
    acct = await account(pool)
    [lead] = await add_leads(pool, acct, 1)
    assert (await post(api, ARCHIVE, {**ALL, "lead_ids": [lead]}, acct.key))[0] == 200
    body = {"insert_leads": True, "delete_leads": True, "lead_ids": [lead]}
    assert (await post(api, DEARCHIVE, body, acct.key))[0] == 200


# --- 400: flags -----------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["insert_leads", "update_leads", "delete_leads"])
@pytest.mark.parametrize("value", ["missing", None, "true", 1, 0, []])
async def test_flags_must_be_json_booleans(
    api: Client, pool: asyncpg.Pool, flag: str, value: object
) -> None:
    """A flag that is missing or not true/false: the seed's 400 for that flag."""
    acct = await account(pool)
    [lead] = await add_leads(pool, acct, 1)
    body: dict[str, Any] = {**ALL, "lead_ids": [lead]}
    if value == "missing":
        del body[flag]
    else:
        body[flag] = value
    status, answer = await post(api, ARCHIVE, body, acct.key)
    assert (status, answer) == (400, errors(f"{flag} must be a boolean value"))
    assert await archived_ids(pool) == []


async def test_flags_are_checked_in_the_vendor_order(api: Client, pool: asyncpg.Pool) -> None:
    """With every flag and lead_ids wrong, insert_leads is the one reported."""
    acct = await account(pool)
    body: dict[str, Any] = {"insert_leads": "x", "update_leads": "x", "delete_leads": "x"}
    body["lead_ids"] = ["a"]
    assert await post(api, ARCHIVE, body, acct.key) == (
        400,
        errors("insert_leads must be a boolean value"),
    )
    body |= {"insert_leads": True, "update_leads": True}
    assert await post(api, ARCHIVE, body, acct.key) == (
        400,
        errors("delete_leads must be a boolean value"),
    )


# --- 400: lead_ids --------------------------------------------------------------------------------

NOT_INTEGERS = "lead_ids must only contain integer values"


async def test_a_quoted_id_is_not_an_integer(api: Client, pool: asyncpg.Pool) -> None:
    """The seed's example: "0" in quotes gives lead_errors 1 and lists it as sent."""
    acct = await account(pool)
    status, body = await post(api, ARCHIVE, {**ALL, "lead_ids": ["0"]}, acct.key)
    assert (status, body) == (400, {"message": NOT_INTEGERS, "lead_errors": 1, "lead_ids": ["0"]})


async def test_every_non_integer_is_listed(api: Client, pool: asyncpg.Pool) -> None:
    """Floats (even 1.0), booleans, null, lists and objects are listed as sent, and counted."""
    acct = await account(pool)
    [lead] = await add_leads(pool, acct, 1)
    ids = [lead, "7", 1.0, 2.5, True, None, [1], {"id": 1}]
    status, body = await post(api, ARCHIVE, {**ALL, "lead_ids": ids}, acct.key)
    assert (status, body) == (400, errors(NOT_INTEGERS, ids[1:]))
    status, body = await post(api, ARCHIVE, {**ALL, "lead_ids": "1,2"}, acct.key)
    assert (status, body) == (400, errors(NOT_INTEGERS, ["1,2"]))


async def test_numbers_too_large_to_read_are_listed_as_sent(
    api: Client, pool: asyncpg.Pool
) -> None:
    """1e400 (beyond a double) and an integer of 5,000 digits are JSON, but no id can be read
    from them: listed as sent under "must only contain integer values", never a 500; a body
    that is not JSON past such a number still gets the malformed-JSON 500."""
    acct = await account(pool)
    [lead] = await add_leads(pool, acct, 1)
    huge = b"1" + b"0" * 5000
    raw = b'{"insert_leads": true, "update_leads": true, "delete_leads": false, "lead_ids": ['
    response = await api.post(
        ARCHIVE,
        data=raw + str(lead).encode() + b", 1e400, " + huge + b"]}",
        headers={"Authorization": f"Key={acct.key}", "Content-Type": "application/json"},
    )
    assert response.status == 400
    listed = b'"lead_errors":2,"lead_ids":[1e400,' + huge + b"]}"
    assert await response.read() == b'{"message":"' + NOT_INTEGERS.encode() + b'",' + listed
    assert await live_ids(pool) == [lead]
    status, body = await post(api, ARCHIVE, None, acct.key, raw=raw + b"1e400, s]}")
    assert status == 500
    assert body["message"].startswith("JSON is malformed: ")
    assert body["message"].endswith("Path 'lead_ids[1]', line 1, position 89.")


@pytest.mark.parametrize("ids", ["missing", None, []])
async def test_lead_ids_must_not_be_empty(api: Client, pool: asyncpg.Pool, ids: object) -> None:
    """No lead_ids, null or []: the seed's "atleast 1 value" 400."""
    acct = await account(pool)
    body: dict[str, Any] = dict(ALL) if ids == "missing" else {**ALL, "lead_ids": ids}
    assert await post(api, ARCHIVE, body, acct.key) == (
        400,
        errors("lead_ids must contain atleast 1 value"),
    )


async def test_500_ids_are_accepted_and_501_refused(api: Client, pool: asyncpg.Pool) -> None:
    """Exactly 500 live leads archive; 501 ids give the seed's 400 with no ids listed."""
    acct = await account(pool)
    ids = await add_leads(pool, acct, 501)
    status, body = await post(api, ARCHIVE, {**ALL, "lead_ids": ids}, acct.key)
    assert (status, body) == (400, errors("lead_ids cannot exceed 500 values"))
    assert await archived_ids(pool) == []
    status, body = await post(api, ARCHIVE, {**ALL, "lead_ids": ids[:500]}, acct.key)
    assert (status, body) == (200, counts(500, 500, 0, 500))
    assert await live_ids(pool) == [ids[500]]


async def test_duplicates_are_listed_once_each(api: Client, pool: asyncpg.Pool) -> None:
    """Each duplicated id is listed once (in the order it first repeats) and counted once."""
    acct = await account(pool)
    a, b, c = await add_leads(pool, acct, 3)
    status, body = await post(api, ARCHIVE, {**ALL, "lead_ids": [a, b, c, b, a, b]}, acct.key)
    assert (status, body) == (400, errors("lead_ids cannot contain duplicate values", [b, a]))
    assert await archived_ids(pool) == []


async def test_missing_ids_are_listed_and_nothing_is_archived(
    api: Client, pool: asyncpg.Pool
) -> None:
    """Unknown ids (0, negative, beyond bigint) are listed; the known ones stay untouched."""
    acct = await account(pool)
    [lead] = await add_leads(pool, acct, 1)
    ids = [lead, 0, -5, lead + 1000, 2**70]
    status, body = await post(api, ARCHIVE, {**ALL, "lead_ids": ids}, acct.key)
    assert (status, body) == (400, errors("lead_ids does not exist", ids[1:]))
    assert await live_ids(pool) == [lead]
    assert await archived_ids(pool) == []


async def test_another_accounts_lead_does_not_exist(api: Client, pool: asyncpg.Pool) -> None:
    """A lead of another account is answered exactly like a missing one, on both routes."""
    mine, theirs = await account(pool, "mine"), await account(pool, "theirs")
    [foreign] = await add_leads(pool, theirs, 1)
    status, body = await post(api, ARCHIVE, {**ALL, "lead_ids": [foreign]}, mine.key)
    assert (status, body) == (400, errors("lead_ids does not exist", [foreign]))
    assert (await post(api, ARCHIVE, {**ALL, "lead_ids": [foreign]}, theirs.key))[0] == 200
    body = {"insert_leads": True, "delete_leads": True, "lead_ids": [foreign]}
    status, answer = await post(api, DEARCHIVE, body, mine.key)
    assert (status, answer) == (400, errors("lead_ids does not exist", [foreign]))
    assert await archived_ids(pool) == [foreign]


# --- 500 ------------------------------------------------------------------------------------------


async def test_malformed_json_names_where_it_broke(api: Client, pool: asyncpg.Pool) -> None:
    """Like the seed's Newtonsoft message: the reason, the path, the line and the position."""
    acct = await account(pool)
    lines = ["{", '  "insert_leads": true,', '  "update_leads": true,']
    lines += ['  "delete_leads": true,', '  "lead_ids": [']
    lines += [f"    {i}," for i in range(97)] + ["    s", "  ]", "}"]
    status, body = await post(api, ARCHIVE, None, acct.key, raw="\n".join(lines).encode())
    message = "JSON is malformed: invalid character 's'. Path 'lead_ids[97]', line 103, position 5."
    assert (status, body) == (500, {"message": message, "lead_errors": 0, "lead_ids": []})


@pytest.mark.parametrize("raw", [b"[]", b"7", b'"text"', b"null"])
async def test_a_body_that_is_not_an_object_is_a_500(
    api: Client, pool: asyncpg.Pool, raw: bytes
) -> None:
    """Valid JSON that is not an object is one of the seed's "other errors"."""
    acct = await account(pool)
    status, body = await post(api, ARCHIVE, None, acct.key, raw=raw)
    assert (status, body) == (500, errors("request body must be a JSON object"))


async def test_an_oversized_body_is_413(make_client: MakeClient, pool: asyncpg.Pool) -> None:
    """A body over LEDGER_MAX_BODY_BYTES is refused in the vendor's shape, not a stack trace."""
    api = await make_client(max_body_bytes=1024)
    acct = await account(pool)
    status, body = await post(api, ARCHIVE, {**ALL, "lead_ids": list(range(1, 400))}, acct.key)
    assert (status, body) == (413, errors("request body too large"))


# --- scenarios ------------------------------------------------------------------------------------


async def test_safe_delete_keeps_a_lead_changed_after_archiving(
    api: Client, pool: asyncpg.Pool
) -> None:
    """Archived, then changed: delete alone keeps it; update+delete re-syncs and deletes it."""
    acct = await account(pool)
    [lead] = await add_leads(pool, acct, 1)
    only = {"insert_leads": False, "update_leads": False, "delete_leads": False}
    archive_only = {**only, "insert_leads": True, "lead_ids": [lead]}
    assert await post(api, ARCHIVE, archive_only, acct.key) == (200, counts(1, 1, 0, 0))
    async with pool.acquire() as conn, conn.transaction():
        await leads.update_leads(
            conn, ctx(acct), account_id=acct.account_id, patches={lead: {"name": "Changed"}}
        )
    delete_only = {**only, "delete_leads": True, "lead_ids": [lead]}
    assert await post(api, ARCHIVE, delete_only, acct.key) == (200, counts(1, 0, 0, 0))
    assert await live_ids(pool) == [lead]
    sync_delete = {**only, "update_leads": True, "delete_leads": True, "lead_ids": [lead]}
    assert await post(api, ARCHIVE, sync_delete, acct.key) == (200, counts(1, 0, 1, 1))
    assert await live_ids(pool) == []
    assert await pool.fetchval("SELECT name FROM lead_archive WHERE lead_id = $1", lead) == (
        "Changed"
    )


async def test_round_trip_keeps_the_id_and_fields(api: Client, pool: asyncpg.Pool) -> None:
    """Archive then dearchive: the native API sees the lead gone, then back, unchanged."""
    acct = await account(pool)
    [lead] = await add_leads(pool, acct, 1)
    native_auth = {"Authorization": f"Bearer {acct.native_key}"}
    before = await (await api.get(f"/v1/leads/{lead}", headers=native_auth)).json()
    assert (await post(api, ARCHIVE, {**ALL, "lead_ids": [lead]}, acct.key))[0] == 200
    assert (await api.get(f"/v1/leads/{lead}", headers=native_auth)).status == 404
    body = {"insert_leads": True, "delete_leads": True, "lead_ids": [lead]}
    assert await post(api, DEARCHIVE, body, acct.key) == (200, counts(1, 1, 0, 1))
    response = await api.get(f"/v1/leads/{lead}", headers=native_auth)
    assert response.status == 200
    after = await response.json()
    ignored = {"version", "modified_at"}
    assert {k: v for k, v in after.items() if k not in ignored} == {
        k: v for k, v in before.items() if k not in ignored
    }
    assert await archived_ids(pool) == []


async def test_dearchive_validates_its_own_flags(api: Client, pool: asyncpg.Pool) -> None:
    """Dearchive needs no update_leads, checks insert/delete flags, and only archived ids."""
    acct = await account(pool)
    [lead] = await add_leads(pool, acct, 1)
    body: dict[str, Any] = {"insert_leads": True, "lead_ids": [lead]}
    assert await post(api, DEARCHIVE, body, acct.key) == (
        400,
        errors("delete_leads must be a boolean value"),
    )
    body["delete_leads"] = True
    status, answer = await post(api, DEARCHIVE, body, acct.key)
    assert (status, answer) == (400, errors("lead_ids does not exist", [lead]))
    status, answer = await post(api, DEARCHIVE, {**body, "lead_ids": []}, acct.key)
    assert (status, answer) == (400, errors("lead_ids must contain atleast 1 value"))


async def test_dearchive_keeps_the_archive_row_without_delete(
    api: Client, pool: asyncpg.Pool
) -> None:
    """Restore without delete_leads: live again, archive row kept; a later delete drops it."""
    acct = await account(pool)
    [lead] = await add_leads(pool, acct, 1)
    assert (await post(api, ARCHIVE, {**ALL, "lead_ids": [lead]}, acct.key))[0] == 200
    body = {"insert_leads": True, "delete_leads": False, "lead_ids": [lead]}
    assert await post(api, DEARCHIVE, body, acct.key) == (200, counts(1, 1, 0, 0))
    assert (await live_ids(pool), await archived_ids(pool)) == ([lead], [lead])
    body = {"insert_leads": True, "delete_leads": True, "lead_ids": [lead]}
    assert await post(api, DEARCHIVE, body, acct.key) == (200, counts(1, 0, 0, 1))
    assert (await live_ids(pool), await archived_ids(pool)) == ([lead], [])


async def test_the_routes_are_documented(api: Client, pool: asyncpg.Pool) -> None:
    """Both routes are in a valid OpenAPI document, with the Key= security scheme."""
    acct = await account(pool)
    headers = {"Authorization": f"Bearer {acct.native_key}"}
    document = await (await api.get("/openapi.json", headers=headers)).json()
    validate(document)
    paths = document["paths"]
    for path in (ARCHIVE, DEARCHIVE):
        assert paths[path]["post"]["security"] == [{"vicidialKey": []}]
        assert set(paths[path]["post"]["responses"]) >= {"200", "400", "401", "403", "500"}
