"""Hostile but legitimate inputs on every route (issue 11, items 5 and 6): each answers a 4xx (or
the vendor's documented status) in the route's own shape, never a traceback, and the server
still answers /healthz afterwards.

The shared input rules these exercise live in lead_ledger/service/inputs.py: ASCII digits within
the column's range, no NUL (0x00) in text bound for PostgreSQL, JSON nested too deeply read as
malformed JSON.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import pytest
from aiohttp import web

from lead_ledger.api.app import create_app
from lead_ledger.api.edge import ONE_LEAD_BODY_BYTES
from lead_ledger.api.middleware import request_context
from lead_ledger.settings import Settings
from tests.api.test_edge import World, account_with_every_key
from tests.conftest import ADMIN_TOKEN
from tests.support import Client

ADMIN: Final = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
OOPS: Final = "Oops Something went wrong, Please contact Administrator"
UNABLE: Final = {"non_field_errors": ["Unable to log in with provided credentials."]}
NUL_REASON: Final = "must not contain NUL (0x00)"
TOO_DEEP: Final = "JSON is nested too deeply"
# An object 10,000 deep under an unknown key: typed decoders skip into it too.
DEEP: Final = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
JSON: Final = {"Content-Type": "application/json"}
PAST_BIGINT: Final = "99999999999999999999"
SUPERSCRIPT_TWO: Final = "%C2%B2"  # '²': a digit to Python's int() and str.isdigit()
ARABIC_THREE: Final = "%D9%A3"  # '٣'
V4_PATH: Final = "/cloudAgentRestAPI/index.php/AddCampaignBulkDataV4/addBulkData/format/json"


@dataclass(frozen=True)
class Case:
    """A request (its path may name {account} and {campaign}) and the answer it must get."""

    name: str
    method: str
    path: str
    auth: str | None  # the dialect whose key it sends, "admin", or None
    status: int
    # The exact body, or "problem" (problem+json with type/title/status = status).
    expected: Any = "problem"
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    parameter: str | None = None  # the problem's `parameter`, when it names one


def _contact(**values: object) -> bytes:
    contact = {"DiallerCampaignsID": "{campaign}", "Name": "Doe", "PhoneNumber1": "+4930123451"}
    return msgspec.json.encode(contact | values)


def _jtel_invalid(name: str, why: str = NUL_REASON) -> dict[str, object]:
    return {"status": 400, "error": f"Invalid value for {name}: {why}"}


def _upload(username: str) -> tuple[bytes, dict[str, str]]:
    boundary = "hostile"
    parts = [
        ("username", username),
        ("apiKey", "{ozonetel}"),
        ("campaignName", "sales"),
    ]
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in parts
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="n.csv"\r\n\r\n'
        f"phoneNumber\n9876543210\n\r\n--{boundary}--\r\n"
    )
    return body.encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


_UPLOAD_BODY, _UPLOAD_HEADERS = _upload("ac\x00me")
_VICIDIAL_DEEP: Final = {"message": TOO_DEEP, "lead_errors": 0, "lead_ids": []}

CASES: Final = [
    # --- native: bounds, Unicode digits, NUL in query values ------------------------------------
    *(
        Case(
            f"{path} after past bigint",
            "GET",
            f"{path}?after={PAST_BIGINT}",
            "native",
            400,
            parameter="after",
        )
        for path in ("/v1/leads", "/v1/events", "/v1/audit", "/v1/events/stream")
    ),
    Case(
        "as_of_version past integer",
        "GET",
        "/v1/leads/1?as_of_version=3000000000",
        "native",
        400,
        parameter="as_of_version",
    ),
    *(
        Case(f"NUL in {name}", "GET", f"{path}?{name}=a%00b", "native", 400, parameter=name)
        for path, name in (
            ("/v1/leads", "user_data"),
            ("/v1/leads", "campaign"),
            ("/v1/audit", "actor"),
            ("/v1/audit", "type"),
            ("/v1/audit", "dialect"),
        )
    ),
    Case("job id in Unicode digits", "GET", f"/v1/jobs/{SUPERSCRIPT_TWO}", "native", 404),
    Case("lead id in Unicode digits", "GET", f"/v1/leads/{SUPERSCRIPT_TWO}", "native", 404),
    Case(
        "lead history id in Arabic digits",
        "GET",
        f"/v1/leads/{ARABIC_THREE}/history",
        "native",
        404,
    ),
    Case(
        "Last-Event-ID in Unicode digits",
        "GET",
        "/v1/events/stream",
        "native",
        400,
        headers={"Last-Event-ID": "²"},
        parameter="Last-Event-ID",
    ),
    # --- jtel ------------------------------------------------------------------------------------
    *(
        Case(
            f"jtel NUL in {name}",
            "POST",
            "/rest/v1.0/{account}/dialler/contacts/import",
            "jtel",
            400,
            _jtel_invalid(name),
            _contact(**{name: "a\x00b"}),
            JSON,
        )
        for name in ("Name", "PhoneNumber1", "UserData")
    ),
    Case(
        "jtel NUL in DiallerCampaignsName",
        "POST",
        "/rest/v1.0/{account}/dialler/contacts/import",
        "jtel",
        400,
        _jtel_invalid("DiallerCampaignsName"),
        msgspec.json.encode(
            {"DiallerCampaignsName": "a\x00b", "Name": "x", "PhoneNumber1": "+4930123451"}
        ),
        JSON,
    ),
    Case(
        "jtel NUL in userData",
        "DELETE",
        "/rest/v1.0/{account}/dialler/contacts/contact?userData=a%00b",
        "jtel",
        400,
        _jtel_invalid("userData"),
    ),
    Case(
        "jtel contact id in Unicode digits",
        "GET",
        f"/rest/v1.0/{{account}}/dialler/contacts/{SUPERSCRIPT_TWO}",
        "jtel",
        404,
        {"status": 404, "error": "Dialler contact not found"},
    ),
    Case(
        "jtel delete id in Unicode digits",
        "DELETE",
        f"/rest/v1.0/{{account}}/dialler/contacts/contact/{SUPERSCRIPT_TWO}",
        "jtel",
        404,
        {"status": 404, "error": "Dialler contact not found"},
    ),
    Case(
        "jtel diallerCampaignsID in Unicode digits",
        "GET",
        f"/rest/v1.0/{{account}}/dialler/contacts?diallerCampaignsID={SUPERSCRIPT_TWO}",
        "jtel",
        400,
        _jtel_invalid("diallerCampaignsID", "an integer is required"),
    ),
    Case(
        "jtel limitStart in Arabic digits",
        "GET",
        f"/rest/v1.0/{{account}}/dialler/contacts?diallerCampaignsID=1&limitStart={ARABIC_THREE}",
        "jtel",
        400,
        _jtel_invalid("limitStart", "an integer is required"),
    ),
    Case(
        "jtel unknown path with a newline",
        "GET",
        "/rest/v1.0/{account}/a%0Ab",
        "jtel",
        404,
        {"status": 404, "error": "Resource not found"},
    ),
    Case(
        "jtel import nested too deeply",
        "POST",
        "/rest/v1.0/{account}/dialler/contacts/import",
        "jtel",
        400,
        {"status": 400, "error": "Invalid JSON in request body"},
        DEEP,
        JSON,
    ),
    # --- Flexydial -------------------------------------------------------------------------------
    Case(
        "flexydial upload nested too deeply",
        "POST",
        "/api/bulkphonebookupload/v1/",
        "flexydial",
        400,
        {"errors": OOPS},
        DEEP,
        JSON,
    ),
    Case(
        "flexydial NUL in campaign",
        "POST",
        "/api/bulkphonebookupload/v1/",
        "flexydial",
        400,
        {"errors": "Campaign not found."},  # a name with a NUL names nothing
        msgspec.json.encode({"campaign": "sa\x00les", "bulk_data": [{"numeric": "9876543210"}]}),
        JSON,
    ),
    Case(
        "flexydial status id in Unicode digits",
        "GET",
        f"/api/bulkphonebookupload/status/{SUPERSCRIPT_TWO}/",
        "flexydial",
        404,
        {"errors": "Job not found."},
    ),
    Case(
        "generate-token nested too deeply",
        "POST",
        "/api/generate-token/",
        None,
        400,
        UNABLE,
        DEEP,
        JSON,
    ),
    Case(
        "generate-token multipart without boundary",
        "POST",
        "/api/generate-token/",
        None,
        400,
        UNABLE,
        b"username=a&password=b",
        {"Content-Type": "multipart/form-data"},
    ),
    Case(
        "generate-token form in a charset nobody knows",
        "POST",
        "/api/generate-token/",
        None,
        400,
        UNABLE,
        b"username=a&password=b",
        {"Content-Type": "application/x-www-form-urlencoded; charset=bogus"},
    ),
    Case(
        "generate-token multipart part in a charset nobody knows",
        "POST",
        "/api/generate-token/",
        None,
        400,
        UNABLE,
        b'--b\r\nContent-Disposition: form-data; name="username"\r\n'
        b"Content-Type: text/plain; charset=bogus\r\n\r\na\r\n--b--\r\n",
        {"Content-Type": "multipart/form-data; boundary=b"},
    ),
    Case(
        "generate-token NUL in username",
        "POST",
        "/api/generate-token/",
        None,
        400,
        UNABLE,
        msgspec.json.encode({"username": "a\x00b", "password": "x"}),
        JSON,
    ),
    # --- Ozonetel --------------------------------------------------------------------------------
    Case(
        "bulk V4 form that is not UTF-8",
        "POST",
        V4_PATH,
        None,
        200,
        {"status": "error", "message": "apiKey should not be empty"},
        b"apiKey=\xff",
        {"Content-Type": "application/x-www-form-urlencoded"},
    ),
    Case(
        "bulk V4 form in a charset nobody knows",
        "POST",
        V4_PATH,
        None,
        200,
        {"status": "error", "message": "apiKey should not be empty"},
        b"apiKey=x",
        {"Content-Type": "application/x-www-form-urlencoded; charset=bogus"},
    ),
    Case(
        "AddCampaignData nested too deeply",
        "POST",
        "/ca_apis/AddCampaignData",
        "ozonetel",
        400,
        {"status": "error", "message": "Malformed JSON request body"},
        DEEP,
        JSON,
    ),
    Case(
        "AddCampaignData NUL in userName",
        "POST",
        "/ca_apis/AddCampaignData",
        "ozonetel",
        200,
        {"status": "false", "message": "Invalid User Details", "data": None},
        msgspec.json.encode(
            {"userName": "ac\x00me", "campaignName": "sales", "phoneNumber": "9876543210"}
        ),
        JSON,
    ),
    Case(
        "bulk upload NUL in username",
        "POST",
        "/endpoint/dailer/data/bulk/upload",
        None,
        200,
        {"status": "error", "message": "Authentication failed"},
        _UPLOAD_BODY,
        _UPLOAD_HEADERS,
    ),
    # --- Vicidial: malformed JSON is the vendor's documented 500 ---------------------------------
    Case(
        "archive nested too deeply",
        "POST",
        "/vicidial/leads/archive",
        "vicidial",
        500,
        _VICIDIAL_DEEP,
        DEEP,
        JSON,
    ),
    Case(
        "dearchive nested too deeply",
        "POST",
        "/vicidial/leads/dearchive",
        "vicidial",
        500,
        _VICIDIAL_DEEP,
        DEEP,
        JSON,
    ),
    # --- admin and the document ------------------------------------------------------------------
    Case(
        "admin token not ASCII",
        "GET",
        "/v1/admin/accounts",
        None,
        401,
        headers={"Authorization": "Bearer \u00e9t\u00e9"},
    ),
    Case(
        "admin body nested too deeply",
        "POST",
        "/v1/admin/accounts",
        "admin",
        400,
        body=DEEP,
        headers=JSON,
    ),
    Case(
        "admin NUL in a body field",
        "POST",
        "/v1/admin/accounts",
        "admin",
        400,
        body=msgspec.json.encode({"name": "a\x00b"}),
        headers=JSON,
    ),
    Case(
        "admin NUL in the account",
        "GET",
        "/v1/admin/accounts/a%00b",
        "admin",
        404,  # a name with a NUL names nothing
    ),
]


def auth_headers(auth: str | None, keys: dict[str, str]) -> dict[str, str]:
    match auth:
        case "admin":
            return ADMIN
        case "native" | "jtel":
            return {"Authorization": f"Bearer {keys[auth]}"}
        case "vicidial":
            return {"Authorization": f"Key={keys[auth]}"}
        case "flexydial":
            return {"Authorization": f"Token {keys[auth]}"}
        case "ozonetel":
            return {"apiKey": keys[auth]}
        case _:
            return {}


def _fill(text: bytes, world: World) -> bytes:
    return (
        text.replace(b'"{campaign}"', str(world.campaign_id).encode())
        .replace(b"{ozonetel}", world.keys["ozonetel"].encode())
        .replace(b"{account}", str(world.account_id).encode())
    )


async def send(api: Client, case: Case, world: World) -> tuple[int, str, str]:
    """The case's request; its status, content type and body text."""
    path = case.path.replace("{account}", str(world.account_id))
    headers = {**auth_headers(case.auth, world.keys), **case.headers}
    body = None if case.body is None else _fill(case.body, world)
    async with api.request(case.method, path, headers=headers, data=body) as response:
        return response.status, response.content_type, await response.text()


def check_answer(case: Case, status: int, content_type: str, text: str) -> None:
    """The status, the route's own shape, and nothing of a traceback."""
    assert status == case.status, text
    assert "Traceback" not in text
    assert 'File "' not in text
    body = msgspec.json.decode(text)
    if case.expected == "problem":
        assert content_type == "application/problem+json", text
        assert body["status"] == case.status
        assert isinstance(body["title"], str)
        assert body["type"] == "about:blank"
        if case.parameter is not None:
            assert body["parameter"] == case.parameter, text
    else:
        assert content_type == "application/json", text
        assert body == case.expected


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_a_hostile_input_answers_in_the_route_shape(client: Client, case: Case) -> None:
    """The case's answer in its route's shape, and the server serves /healthz after it."""
    world = await account_with_every_key(client)
    check_answer(case, *await send(client, case, world))
    health = await client.get("/healthz")
    assert health.status == 200
    assert await health.json() == {"status": "ok"}


OVER: Final = b'{"a": "' + b"x" * 2048 + b'"}'
TOO_LARGE_CASES: Final = [
    Case(
        "AddCampaignData",
        "POST",
        "/ca_apis/AddCampaignData",
        "ozonetel",
        413,
        {"status": "error", "message": "Data limit exceeded"},
        OVER,
        JSON,
    ),
    Case(
        "bulk upload",
        "POST",
        "/endpoint/dailer/data/bulk/upload",
        None,
        413,
        {"status": "error", "message": "Data limit exceeded"},
        *_upload("acme" + "x" * 2048),
    ),
    Case(
        "bulk upload urlencoded",
        "POST",
        "/endpoint/dailer/data/bulk/upload",
        None,
        413,
        {"status": "error", "message": "Data limit exceeded"},
        b"username=" + b"x" * 2048,
        {"Content-Type": "application/x-www-form-urlencoded"},
    ),
    Case(
        "archive",
        "POST",
        "/vicidial/leads/archive",
        "vicidial",
        413,
        {"message": "request body too large", "lead_errors": 0, "lead_ids": []},
        OVER,
        JSON,
    ),
    Case(
        "dearchive",
        "POST",
        "/vicidial/leads/dearchive",
        "vicidial",
        413,
        {"message": "request body too large", "lead_errors": 0, "lead_ids": []},
        OVER,
        JSON,
    ),
    Case(
        "jtel import",
        "POST",
        "/rest/v1.0/{account}/dialler/contacts/import",
        "jtel",
        413,
        {"status": 413, "error": "Request body too large"},
        OVER,
        JSON,
    ),
    Case(
        "flexydial upload",
        "POST",
        "/api/bulkphonebookupload/v1/",
        "flexydial",
        413,
        {"errors": OOPS},
        OVER,
        JSON,
    ),
    Case("generate-token json", "POST", "/api/generate-token/", None, 400, UNABLE, OVER, JSON),
    Case(
        "generate-token form",
        "POST",
        "/api/generate-token/",
        None,
        400,
        UNABLE,
        b"username=" + b"x" * 2048,
        {"Content-Type": "application/x-www-form-urlencoded"},
    ),
    *(
        Case(f"admin {path}", method, path, "admin", 413, body=OVER, headers=JSON)
        for method, path in (
            ("POST", "/v1/admin/accounts"),
            ("POST", "/v1/admin/accounts/acme/credentials"),
            ("POST", "/v1/admin/accounts/acme/users"),
            ("POST", "/v1/admin/accounts/acme/agents"),
            ("POST", "/v1/admin/accounts/acme/skills"),
            ("POST", "/v1/admin/accounts/acme/campaigns"),
            ("PATCH", "/v1/admin/accounts/acme/campaigns/sales"),
            ("PATCH", "/v1/admin/accounts/acme/settings"),
        )
    ),
]


async def test_a_body_over_the_limit_answers_in_every_route_shape(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    """Every route that reads a body answers one over LEDGER_MAX_BODY_BYTES in its own shape."""
    api = await aiohttp_client(create_app(settings, database_url))
    world = await account_with_every_key(
        api
    )  # made under the default limit: the admin bodies are small
    small = msgspec.structs.replace(settings, max_body_bytes=1024)
    limited = await aiohttp_client(create_app(small, database_url))
    for case in TOO_LARGE_CASES:
        check_answer(case, *await send(limited, case, world))
    assert (await limited.get("/healthz")).status == 200


async def test_a_body_over_the_limit_past_the_edge_is_never_plain_text(
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    """A 413 raised outside a dialect's edge: the middleware answers it as problem+json."""

    async def reads_its_body(request: web.Request) -> web.Response:
        await request.read()
        return web.Response()

    app = web.Application(middlewares=[request_context], client_max_size=16)
    app.router.add_post("/raw", reads_its_body)
    api = await aiohttp_client(app)
    response = await api.post("/raw", data=b"x" * 64)
    assert response.status == 413
    assert response.content_type == "application/problem+json"
    assert (await response.json())["status"] == 413
    assert "X-Request-ID" in response.headers


BEYOND_ONE_LEAD: Final = b'{"a": "' + b"x" * (ONE_LEAD_BODY_BYTES + 1) + b'"}'


async def test_a_route_that_carries_one_lead_reads_no_large_body_before_its_checks(
    client: Client,
) -> None:
    """AddCampaignData, generate-token and Vicidial's non-agent API check their caller after
    reading the body: one past ONE_LEAD_BODY_BYTES (far below LEDGER_MAX_BODY_BYTES) is
    answered too large in the route's shape, whoever sends it, without holding it all."""
    cases = {case.name: case for case in TOO_LARGE_CASES}
    for name, headers in (
        ("AddCampaignData", {"apiKey": "not-a-key"}),
        ("generate-token json", {}),
    ):
        case = cases[name]
        response = await client.post(
            case.path, data=io.BytesIO(BEYOND_ONE_LEAD), headers={**JSON, **headers}
        )
        assert response.status == case.status, name
        assert await response.json() == case.expected, name
    form = b"function=add_lead&user=x&pass=y&comments=" + b"x" * (ONE_LEAD_BODY_BYTES + 1)
    vicidial = await client.post(
        "/vicidial/non_agent_api.php",
        data=io.BytesIO(form),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert await vicidial.text() == "ERROR: request body too large\n"
    assert (await client.get("/healthz")).status == 200
