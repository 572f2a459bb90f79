"""Flexydial through the real app: tokens, DRF's 401s, request-level errors, status lookups.

Seed 000's bodies are sent as written (their // comments removed, their two syntax slips
repaired), against a campaign, CRM fields and an agent named like the seed's placeholders.
The helpers here are shared with test_flexydial_jobs.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
import pytest

from lead_ledger.api.app import create_app
from lead_ledger.api.keys import POOL
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import LeadFields
from lead_ledger.projections.rebuild import verify
from lead_ledger.service import jobs
from lead_ledger.service.accounts import issue_login_token
from lead_ledger.service.jobs.insert_leads_kind import InsertLeadsPayload
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context
from lead_ledger.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.support import Client

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TOKEN_PATH = "/api/generate-token/"
BULK = "/api/bulkphonebookupload/v1/"
PASSWORD = "correct horse battery"
PENDING = "Pending state. Please check with Administrator!"
UNABLE = {"non_field_errors": ["Unable to log in with provided credentials."]}

# Seed 000's placeholders, used as real names so that the seed's bodies can be sent as written.
CAMPAIGN = "<flexydial_campaign_name(string)>"
F1 = "flexydial_campaign_crm_section_name:field_name1"
F2 = "flexydial_campaign_crm_section_name:field_name2"
AGENT = "<flexydial_agent_id(string)>"
CUSTOMER_ID = "customer_info:customer_id"
CITY = "customer_info:city"


@pytest.fixture
async def api(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    """The real app, with its background job worker, on a fresh database."""
    return await aiohttp_client(create_app(settings, database_url))


class Tenant(msgspec.Struct):
    """An account with a Flexydial user and token, agents, campaigns and a native key."""

    account_id: int
    username: str
    token: str
    native: dict[str, str]
    campaigns: dict[str, int]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}


async def admin_post(api: Client, path: str, body: dict[str, Any]) -> Any:
    response = await api.post(f"/v1/admin{path}", json=body, headers=ADMIN)
    assert response.status in (200, 201), await response.text()
    return await response.json()


async def tenant(api: Client, name: str = "acme") -> Tenant:
    """Made through the admin API: campaigns "sales" (CRM fields declared), "open" (none
    declared) and the seed's placeholder name; agents a1, a2 and the seed's placeholder; a
    user, whose login gives the token."""
    account = await admin_post(api, "/accounts", {"name": name, "default_region": "IN"})
    base = f"/accounts/{account['id']}"
    campaigns = {}
    for campaign, crm_fields in (("sales", [CUSTOMER_ID, CITY]), ("open", None), (CAMPAIGN, None)):
        made = await admin_post(
            api, f"{base}/campaigns", {"name": campaign, "crm_fields": crm_fields}
        )
        campaigns[campaign] = made["id"]
    for agent in ("a1", "a2", AGENT):
        await admin_post(api, f"{base}/agents", {"agent_id": agent})
    username = f"{name}-admin"
    await admin_post(api, f"{base}/users", {"username": username, "password": PASSWORD})
    native = await admin_post(api, f"{base}/credentials", {"api": "native"})
    response = await api.post(TOKEN_PATH, json={"username": username, "password": PASSWORD})
    assert response.status == 200
    return Tenant(
        account_id=account["id"],
        username=username,
        token=(await response.json())["token"],
        native={"Authorization": f"Bearer {native['key']}"},
        campaigns=campaigns,
    )


async def post_bulk(api: Client, who: Tenant, body: Any) -> tuple[int, Any]:
    response = await api.post(BULK, json=body, headers=who.headers)
    return response.status, await response.json()


async def upload(api: Client, who: Tenant, body: dict[str, Any]) -> str:
    """POST the bulk body, which must be accepted; the job id."""
    code, answer = await post_bulk(api, who, body)
    assert code == 201, answer
    assert set(answer) == {"success", "job_id"}
    assert answer["success"].startswith("Reference/Phonebook Name:flexydial_")
    job_id: str = answer["job_id"]
    return job_id


async def status(api: Client, who: Tenant, job_id: str, method: str = "GET") -> Any:
    path = f"/api/bulkphonebookupload/status/{job_id}/"
    response = await api.request(method, path, headers=who.headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def settled(api: Client, who: Tenant, job_id: str, method: str = "GET") -> Any:
    """Poll the status route until the app's worker has run the job."""
    deadline = time.monotonic() + 120
    while True:
        body = await status(api, who, job_id, method)
        if body != {"status": PENDING}:
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def leads(api: Client, who: Tenant, campaign: str = "sales") -> list[dict[str, Any]]:
    """The campaign's live leads in id order, through the native API."""
    response = await api.get(
        "/v1/leads", params={"campaign": campaign, "limit": "1000"}, headers=who.native
    )
    assert response.status == 200
    found: list[dict[str, Any]] = (await response.json())["leads"]
    return found


def update(reference: str, *rows: dict[str, Any], campaign: str = "sales") -> dict[str, Any]:
    return {
        "campaign": campaign,
        "reference_field": reference,
        "action_type": "update",
        "bulk_data": list(rows),
    }


# --- generate-token -----------------------------------------------------------------------------


async def test_token_is_a_new_flexydial_credential_issued_by_the_user(api: Client) -> None:
    """A login issues a flexydial credential (actor: the user) whose key authenticates."""
    acme = await tenant(api)
    detail = await (await api.get(f"/v1/admin/accounts/{acme.account_id}", headers=ADMIN)).json()
    assert sorted(c["api"] for c in detail["credentials"]) == ["flexydial", "native"]
    assert api.app is not None
    async with api.app[POOL].acquire() as conn:
        row = await conn.fetchrow(
            "SELECT metadata FROM events WHERE type = 'CredentialIssued'"
            " AND data->>'dialect' = 'flexydial'"
        )
    assert row is not None
    actor = msgspec.json.decode(row["metadata"])["actor"]
    assert actor == {
        "dialect": "flexydial",
        "account_id": acme.account_id,
        "username": "acme-admin",
    }
    response = await api.get("/api/bulkphonebookupload/status/1/", headers=acme.headers)
    assert (response.status, await response.json()) == (404, {"errors": "Job not found."})


async def test_every_login_of_a_user_gives_its_one_token(api: Client) -> None:
    """As DRF's ObtainAuthToken: a second login answers the user's token, records nothing and
    lists no second credential; once the admin revokes it, the next login issues a new one."""
    acme = await tenant(api)
    assert api.app is not None
    async with api.app[POOL].acquire() as conn:
        events_before = await conn.fetchval("SELECT count(*) FROM events")
    again = await api.post(TOKEN_PATH, json={"username": "acme-admin", "password": PASSWORD})
    assert (again.status, await again.json()) == (200, {"token": acme.token})
    async with api.app[POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events") == events_before
    detail = await (await api.get(f"/v1/admin/accounts/{acme.account_id}", headers=ADMIN)).json()
    logins = [c for c in detail["credentials"] if c["api"] == "flexydial"]
    assert [c["username"] for c in logins] == ["acme-admin"]
    revoked = await api.delete(
        f"/v1/admin/accounts/{acme.account_id}/credentials/{logins[0]['id']}", headers=ADMIN
    )
    assert revoked.status == 204
    fresh = await api.post(TOKEN_PATH, json={"username": "acme-admin", "password": PASSWORD})
    token = (await fresh.json())["token"]
    assert token != acme.token
    for key, expected in ((acme.token, 401), (token, 404)):
        response = await api.get(
            "/api/bulkphonebookupload/status/1/", headers={"Authorization": f"Token {key}"}
        )
        assert response.status == expected


async def test_concurrent_first_logins_share_one_token(
    api: Client, owner_pool: asyncpg.Pool
) -> None:
    """Logins of a user racing before it has a token, each on its own connection, get one
    token between them, and the rebuilt credentials match the live ones."""
    acme = await tenant(api)
    ctx = Context(actor=Actor(dialect="flexydial", account_id=acme.account_id))
    assert api.app is not None
    pool = api.app[POOL]

    async def login() -> str:
        async with pool.acquire() as conn:
            return await issue_login_token(conn, ctx, acme.account_id, "acme-two", "flexydial")

    tokens = set(await asyncio.gather(*(login() for _ in range(4))))
    assert len(tokens) == 1
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM credentials WHERE username = 'acme-two'") == 1
        )
    report = await verify(owner_pool, ["credentials"])  # shadow tables are the owner's
    assert [t.name for t in report.tables if not t.ok] == []


async def test_token_from_a_form_body(api: Client) -> None:
    """DRF's ObtainAuthToken also reads form bodies."""
    await tenant(api)
    response = await api.post(TOKEN_PATH, data={"username": "acme-admin", "password": PASSWORD})
    assert response.status == 200
    assert set(await response.json()) == {"token"}


async def test_bad_credentials(api: Client) -> None:
    """Wrong credentials: 400 with DRF's non_field_errors text, and no credential issued."""
    acme = await tenant(api)
    bodies = {
        "wrong-password": {"username": "acme-admin", "password": "wrong password"},
        "unknown-user": {"username": "nobody", "password": PASSWORD},
        "password-not-trimmed": {"username": "acme-admin", "password": PASSWORD + " "},
        "nul": {"username": "acme-admin\u0000", "password": PASSWORD},
    }
    answers = {}
    for case, body in bodies.items():
        response = await api.post(TOKEN_PATH, json=body)
        answers[case] = (response.status, await response.json())
    assert answers == dict.fromkeys(bodies, (400, UNABLE))
    detail = await (await api.get(f"/v1/admin/accounts/{acme.account_id}", headers=ADMIN)).json()
    assert len(detail["credentials"]) == 2  # native, and the tenant's own login


async def test_login_field_errors(api: Client) -> None:
    """Missing, blank, null and non-text fields get DRF's field errors; bodies that are not a
    JSON object get non_field_errors."""
    required = ["This field is required."]
    cases: list[tuple[Any, Any]] = [
        ({}, {"username": required, "password": required}),
        ({"username": "acme-admin"}, {"password": required}),
        ({"username": "  ", "password": PASSWORD}, {"username": ["This field may not be blank."]}),
        ({"username": "u", "password": ""}, {"password": ["This field may not be blank."]}),
        ({"username": None, "password": PASSWORD}, {"username": ["This field may not be null."]}),
        (
            {"username": ["a"], "password": {"p": 1}},
            {"username": ["Not a valid string."], "password": ["Not a valid string."]},
        ),
        ({"username": "acme-admin", "password": True}, {"password": ["Not a valid string."]}),
        ([1, 2], UNABLE),
        ("acme-admin", UNABLE),
    ]
    for body, errors in cases:
        response = await api.post(TOKEN_PATH, json=body)
        assert (response.status, await response.json()) == (400, errors), body
    for raw in (b"{not json", b""):
        response = await api.post(
            TOKEN_PATH, data=raw, headers={"Content-Type": "application/json"}
        )
        assert (response.status, await response.json()) == (400, UNABLE), raw


# --- DRF's TokenAuthentication ------------------------------------------------------------------


async def test_admin_issued_flexydial_credential_is_a_token(api: Client) -> None:
    """A flexydial credential from the admin API works as `Token <key>`; revoked, it does not."""
    acme = await tenant(api)
    issued = await admin_post(api, f"/accounts/{acme.account_id}/credentials", {"api": "flexydial"})
    headers = {"Authorization": f"Token {issued['key']}"}
    job_id = await upload(
        api,
        msgspec.structs.replace(acme, token=issued["key"]),
        {"campaign": "sales", "bulk_data": [{"numeric": "9876500001"}]},
    )
    assert await settled(api, acme, job_id) == {"status": "Completed"}
    revoked = await api.delete(
        f"/v1/admin/accounts/{acme.account_id}/credentials/{issued['id']}", headers=ADMIN
    )
    assert revoked.status == 204
    response = await api.post(BULK, json={"campaign": "sales"}, headers=headers)
    assert (response.status, await response.json()) == (401, {"detail": "Invalid token."})


NOT_PROVIDED = "Authentication credentials were not provided."
UNAUTHORIZED = {
    "no-header": (None, NOT_PROVIDED),
    "bearer": ("Bearer {token}", NOT_PROVIDED),
    "no-scheme": ("{token}", NOT_PROVIDED),
    "no-key": ("Token", "Invalid token header. No credentials provided."),
    "blank-key": ("Token   ", "Invalid token header. No credentials provided."),
    "spaces": (
        "Token {token} extra",
        "Invalid token header. Token string should not contain spaces.",
    ),
    "unknown": ("Token not-a-token", "Invalid token."),
    "native-key": ("Token {native}", "Invalid token."),
    "wrong": ("token {token}x", "Invalid token."),
}


@pytest.mark.parametrize("route", ["bulk", "status-get", "status-post"])
async def test_unauthorized(api: Client, route: str) -> None:
    """DRF's 401 answers, with WWW-Authenticate: Token, on every token-protected route."""
    acme = await tenant(api)
    native = acme.native["Authorization"].removeprefix("Bearer ")
    body = {"campaign": "sales", "bulk_data": [{"numeric": "9876500001"}]}
    answers = {}
    for case, (header, _) in UNAUTHORIZED.items():
        headers = {}
        if header is not None:
            headers["Authorization"] = header.format(token=acme.token, native=native)
        if route == "bulk":
            response = await api.post(BULK, json=body, headers=headers)
        else:
            method = route.removeprefix("status-").upper()
            response = await api.request(
                method, "/api/bulkphonebookupload/status/1/", headers=headers
            )
        answers[case] = (
            response.status,
            await response.json(),
            response.headers.get("WWW-Authenticate"),
        )
    expected = {
        case: (401, {"detail": detail}, "Token") for case, (_, detail) in UNAUTHORIZED.items()
    }
    assert answers == expected


async def test_token_scheme_is_case_insensitive(api: Client) -> None:
    """`token <key>` is accepted, as DRF compares the keyword lower-cased."""
    acme = await tenant(api)
    response = await api.get(
        "/api/bulkphonebookupload/status/1/", headers={"Authorization": f"token {acme.token}"}
    )
    assert response.status == 404


# --- seed 000: request-level errors -------------------------------------------------------------

OOPS = "Oops Something went wrong, Please contact Administrator"
STRUCTURE = "Invalid request structure"
UPDATE = {"campaign": CAMPAIGN, "action_type": "update"}

SEED_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    (
        "type1-payload1",
        {
            "reference_field": "numeric",
            "action_type": "update",
            "bulk_data": [
                {F1: "value", F2: "value"},
                {"supersection:age": "value", "supersection:name": "value"},
            ],
        },
        OOPS,
    ),
    (
        "scenario-payload1",
        {
            "campaign": CAMPAIGN,
            "reference_field": "numeric",
            "bulk_data": [
                {
                    "numeric": "<1st_customer_mobile_number(string)>",
                    "user": AGENT,
                    "flexydial_campaign_crm_section_name:field_name1(string": "value",
                },
                {
                    "numeric": "<2nd_customer_mobile_number(string)>",
                    "user": AGENT,
                    "flexydial_campaign_crm_section_name:field_name1(string": "value",
                },
            ],
        },
        STRUCTURE,
    ),
    ("scenario-payload2", {"campaign": CAMPAIGN}, STRUCTURE),
    (
        "scenario-payload3",
        {"bulk_data": [{F1: "value", F2: "value"}, {F1: "value", F2: "value"}]},
        STRUCTURE,
    ),
    (
        "type2-payload1",
        {**UPDATE, "bulk_data": [{F1: "value", F2: "value"}, {F1: "value", F2: "value"}]},
        "reference_field is missing in the request!",
    ),
    (
        "type3-payload1-2",
        {
            **UPDATE,
            "reference_field": "numeric",
            "bulk_data": [{F1: "value", F2: "value"}, {F1: "value", F2: "value"}],
        },
        "reference_field - numeric is missing in some bulk_data item(s)",
    ),
    (
        "type3-payload3",
        {
            **UPDATE,
            "reference_field": F1,
            "bulk_data": [
                {"numeric": "value", F2: "value"},
                {"numeric": "value", F1: "value", F2: "value"},
            ],
        },
        f"reference_field - {F1} is missing in some bulk_data item(s)",
    ),
    (
        "type3-payload4",
        {
            **UPDATE,
            "reference_field": F1,
            "bulk_data": [{"numeric": "value", F2: "value"}, {"numeric": "value", F2: "value"}],
        },
        f"reference_field - {F1} is missing in some bulk_data item(s)",
    ),
    (
        "type4-payload1",
        {
            **UPDATE,
            "reference_field": "numeric",
            "bulk_data": [
                {"numeric": "value", F1: "value", F2: "value"},
                {"numeric": "value", F2: "value"},
            ],
        },
        "All items in bulk_data must have uniform structure",
    ),
    (
        "type4-payload2",
        {
            **UPDATE,
            "reference_field": F2,
            "bulk_data": [
                {"numeric": "value", F1: "value", F2: "value"},
                {F2: "value", "numeric": "value"},
            ],
        },
        "All items in bulk_data must have uniform structure",
    ),
    (
        "type4-payload3",
        {
            **UPDATE,
            "reference_field": "numeric",
            "bulk_data": [{"numeric": "value", F1: "value", F2: "value"}, {"numeric": "value"}],
        },
        "All items in bulk_data must have uniform structure",
    ),
    (
        "type5-payload1",
        {
            **UPDATE,
            "reference_field": "numeric",
            "bulk_data": [{"numeric": "value"}, {"numeric": "value"}],
        },
        "Please provide the columns data that you want to update along with the reference_field",
    ),
    (
        # Seed 000's type 4 example: a CRM reference its own items do not carry.
        "accepted-type4-as-documented",
        {
            **UPDATE,
            "reference_field": F1,
            "bulk_data": [{"user": AGENT, "numeric": "value"}, {"user": AGENT, "numeric": "value"}],
        },
        f"reference_field - {F1} is missing in some bulk_data item(s)",
    ),
]


async def test_seed_error_payloads(api: Client) -> None:
    """Every error payload of seed 000 gets exactly its message, as HTTP 400 {"errors"}."""
    acme = await tenant(api)
    answers = {case: await post_bulk(api, acme, payload) for case, payload, _ in SEED_ERRORS}
    assert answers == {case: (400, {"errors": message}) for case, _, message in SEED_ERRORS}


HEADERS = "Headers are not matching with Campaign CRM Fields. Please refer to the sample CSV"
NOT_FOUND = "Campaign not found."


def insert_body(campaign: str, *rows: dict[str, Any]) -> dict[str, Any]:
    return {"campaign": campaign, "bulk_data": [{"numeric": "9876500002"}, *rows]}


# name -> (body, message): refusals of the request as a whole beyond seed 000's payloads.
REFUSALS: dict[str, tuple[Any, str]] = {
    # Seed 000 wins over VENDOR-APIS A3 ("Insert operation cannot have reference_field.").
    "insert-with-reference-field": (
        {"campaign": "sales", "reference_field": "numeric", "bulk_data": [{"numeric": "98765"}]},
        STRUCTURE,
    ),
    "undeclared-crm-key": (insert_body("sales", {"numeric": "1", "loan:amount": "5"}), HEADERS),
    "plain-key": (insert_body("sales", {CUSTOMER_ID: "C1", "mobile": "1"}), HEADERS),
    "plain-key-no-declared-fields": (insert_body("open", {"mobile": "1"}), HEADERS),
    "update-undeclared-crm-key": (update("numeric", {"numeric": "1", "loan:amount": "5"}), HEADERS),
    "unknown-campaign": (insert_body("nowhere"), NOT_FOUND),
    "campaign-name-is-exact": (insert_body("SALES"), NOT_FOUND),
    "another-accounts-campaign": (insert_body("other-sales"), NOT_FOUND),
    "unknown-campaign-before-headers": (insert_body("nowhere", {"loan:amount": "5"}), NOT_FOUND),
    "reference-neither-numeric-nor-crm": (
        update("first_name", {"first_name": "Asha", "last_name": "Rao"}),
        STRUCTURE,
    ),
    "array-body": ([], OOPS),
    "null-body": (None, OOPS),
}


async def test_request_refusals(api: Client) -> None:
    """Structure, declared CRM headers, unknown campaigns, unreadable bodies: 400 {"errors"}."""
    acme = await tenant(api)
    globex = await tenant(api, "globex")
    await admin_post(api, f"/accounts/{globex.account_id}/campaigns", {"name": "other-sales"})
    answers = {case: await post_bulk(api, acme, body) for case, (body, _) in REFUSALS.items()}
    for case, raw in (("malformed", b"{not json"), ("empty", b"")):
        headers = {**acme.headers, "Content-Type": "application/json"}
        response = await api.post(BULK, data=raw, headers=headers)
        answers[case] = (response.status, await response.json())
    expected = {case: (400, {"errors": message}) for case, (_, message) in REFUSALS.items()}
    assert answers == expected | dict.fromkeys(("malformed", "empty"), (400, {"errors": OOPS}))


async def test_undeclared_crm_keys_accepted_without_declared_fields(api: Client) -> None:
    """A campaign that declares no CRM fields takes any section:field key."""
    acme = await tenant(api)
    body = {"campaign": "open", "bulk_data": [{"numeric": "9876500001", "loan:amount": "5"}]}
    job_id = await upload(api, acme, body)
    assert await settled(api, acme, job_id) == {"status": "Completed"}
    assert [lead["crm"] for lead in await leads(api, acme, "open")] == [{"loan:amount": "5"}]


async def test_body_too_large(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    """A body over LEDGER_MAX_BODY_BYTES: 413 with the catch-all text."""
    small = msgspec.structs.replace(settings, max_body_bytes=1024)
    api = await aiohttp_client(create_app(small, database_url))
    acme = await tenant(api)
    rows = [{"numeric": f"98765{n:05d}"} for n in range(100)]
    code, answer = await post_bulk(api, acme, {"campaign": "sales", "bulk_data": rows})
    assert (code, answer) == (413, {"errors": OOPS})


# --- status lookups -----------------------------------------------------------------------------


async def native_job(api: Client, who: Tenant) -> int:
    """A job of the same account but of another dialect (the built-in insert_leads kind)."""
    assert api.app is not None
    payload = InsertLeadsPayload(
        campaign_id=who.campaigns["sales"], rows=[LeadFields(phone_numbers=["9876511111"])]
    )
    ctx = Context(actor=Actor(dialect="native", account_id=who.account_id), request_id="t")
    async with api.app[POOL].acquire() as conn, write_transaction(conn):
        return await jobs.submit_job(
            conn,
            ctx,
            account_id=who.account_id,
            dialect="native",
            kind="insert_leads",
            campaign_id=who.campaigns["sales"],
            payload=msgspec.json.encode(payload),
            received=1,
        )


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_status_of_missing_foreign_and_other_dialect_jobs(api: Client, method: str) -> None:
    """Unknown ids, another account's job and a non-Flexydial job are all "Job not found."."""
    acme = await tenant(api)
    globex = await tenant(api, "globex")
    theirs = await upload(
        api, globex, {"campaign": "sales", "bulk_data": [{"numeric": "9876500001"}]}
    )
    assert await settled(api, globex, theirs, method) == {"status": "Completed"}
    other_dialect = await native_job(api, acme)
    for job_id in (theirs, str(other_dialect), "999999", "abc", "0", "-1", "99999999999999999999"):
        response = await api.request(
            method, f"/api/bulkphonebookupload/status/{job_id}/", headers=acme.headers
        )
        assert (response.status, await response.json()) == (404, {"errors": "Job not found."})
