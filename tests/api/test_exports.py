"""Exports through the real app: csv, xlsx and jsonl files of a campaign now and as of a time
(compared with the as-of reads for every lead), spreadsheet escaping, archived leads, erased
subjects, the retention sweep, and every refusal. Every test ends with `projections verify`."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import msgspec
import openpyxl
import pytest

from lead_ledger.ledger.events import LeadDeleted, LeadEvent, stream_of_lead
from lead_ledger.ledger.lead import RowTimes, decide_archive, fold
from lead_ledger.ledger.locks import export_files_lock_key
from lead_ledger.ledger.opening import open_pairs
from lead_ledger.ledger.store import read_stream
from lead_ledger.service import exports
from tests.api.test_native import (
    CAMPAIGN_A,
    KEY_B,
    A,
    api,
    auth,
    ctx,
    insert_lead,
    seeded,
    update_lead,
    write,
)
from tests.support import Client

__all__ = ["api", "seeded"]  # fixtures, imported to be found here


async def export(api: Client, key: str | None = None, **body: Any) -> dict[str, Any]:
    """POST /v1/exports, then poll the export until it is done; returns its view."""
    view = await settled(api, key, **body)
    assert view["state"] == "done", view
    return view


async def settled(api: Client, key: str | None = None, **body: Any) -> dict[str, Any]:
    """POST /v1/exports, then poll the export until it is done or failed; returns its view."""
    headers = auth(key) if key else auth()
    response = await api.post("/v1/exports", json=body, headers=headers)
    assert response.status == 202, await response.text()
    view: dict[str, Any] = await response.json()
    assert view["state"] in ("queued", "running")
    deadline = time.monotonic() + 120
    while view["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.05)
        got = await api.get(f"/v1/exports/{view['export_id']}", headers=headers)
        assert got.status == 200
        view = await got.json()
    return view


async def download(api: Client, view: dict[str, Any]) -> tuple[bytes, str]:
    path = view["download_url"].split("://", 1)[1].split("/", 1)[1]
    response = await api.get(f"/{path}", headers=auth())
    assert response.status == 200, await response.text()
    disposition = response.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="export-{view["export_id"]}.{view["format"]}"'
    return await response.read(), response.content_type


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def xlsx_rows(data: bytes) -> list[dict[str, str]]:
    sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).worksheets[0]
    rows = [
        [("" if c is None else str(c)) for c in row] for row in sheet.iter_rows(values_only=True)
    ]
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


async def as_of_read(api: Client, lead_id: int, at: datetime) -> dict[str, Any] | None:
    response = await api.get(
        f"/v1/leads/{lead_id}", params={"as_of": at.isoformat()}, headers=auth()
    )
    if response.status == 404:
        return None
    assert response.status == 200
    found: dict[str, Any] = await response.json()
    return found


def shown(value: Any) -> str:
    """A lead's value as a csv cell holds it."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(value)
    return str(value)


async def test_a_campaign_now_as_csv(api: Client, seeded: asyncpg.Pool) -> None:
    """Every live lead of the campaign, in lead id order, with its columns; other campaigns and
    accounts are not in it; the view counts the rows and says when the file expires."""
    await update_lead(seeded, A, 2, ctx(A), crm={"loan:amount": "5000"}, extra={"City": "Pune"})
    view = await export(api, campaign="north", format="csv")
    assert view["rows"] == 3
    assert view["expires_at"] is not None
    data, content_type = await download(api, view)
    assert content_type == "text/csv"
    rows = csv_rows(data)
    assert [r["lead_id"] for r in rows] == ["1", "2", "3"]
    assert {r["campaign"] for r in rows} == {"north"}
    assert rows[1]["loan:amount"] == "5000"
    assert rows[1]["extra:City"] == "Pune"
    assert rows[0]["loan:amount"] == ""
    assert rows[0]["phone_numbers"] == "+919876543211"
    assert rows[0]["name"] == "Lead 1"
    assert rows[0]["status"] == "new"
    header = next(csv.reader(io.StringIO(data.decode())))
    assert header[:3] == ["lead_id", "campaign", "status"]
    assert header[-2:] == ["entry_at", "modified_at"]


async def test_a_download_says_its_request_id_and_charset(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """The file's response carries X-Request-ID (the caller's, or a new one) and a csv says
    it is UTF-8."""
    view = await export(api, campaign="north", format="csv")
    path = f"/v1/exports/{view['export_id']}/file"
    given = await api.get(path, headers=auth() | {"X-Request-ID": "dl-1"})
    assert given.status == 200, await given.text()
    assert given.headers.get("X-Request-ID") == "dl-1"
    assert given.headers["Content-Type"] == "text/csv; charset=utf-8"
    made = await api.get(path, headers=auth())
    assert len(made.headers.get("X-Request-ID", "")) == 32


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
async def test_as_of_export_equals_the_as_of_reads(
    api: Client, seeded: asyncpg.Pool, file_format: str
) -> None:
    """As of a time: a lead updated since shows its old values, one deleted since is there,
    one inserted since is not; every row equals GET /v1/leads/{id}?as_of= for that lead, and
    every lead that read finds is in the file."""
    await update_lead(seeded, A, 1, ctx(A), name="Before", agent="ag-1")
    await asyncio.sleep(0.01)
    at = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await update_lead(seeded, A, 1, ctx(A), name="After")
    await write(seeded, ctx(A), stream_of_lead(2), 1, [LeadDeleted(lead_id=2, reason="api")], A)
    await insert_lead(seeded, A, CAMPAIGN_A, 6, phone_numbers=["+919876543216"], name="New")
    view = await export(api, campaign="north", format=file_format, as_of=at.isoformat())
    data, _ = await download(api, view)
    rows = csv_rows(data) if file_format == "csv" else xlsx_rows(data)
    by_id = {int(r["lead_id"]): r for r in rows}
    assert sorted(by_id) == [1, 2, 3]
    assert by_id[1]["name"] == "Before"
    for lead_id in range(1, 7):
        read = await as_of_read(api, lead_id, at)
        if read is None or read["campaign_id"] != CAMPAIGN_A:
            assert lead_id not in by_id
            continue
        row = by_id[lead_id]
        for name in ("phone_numbers", "name", "agent", "user_data", "priority", "status"):
            assert row[name] == shown(read[name]), (lead_id, name)
        assert datetime.fromisoformat(row["modified_at"]) == datetime.fromisoformat(
            read["modified_at"]
        )


async def test_jsonl_is_raw(api: Client, seeded: asyncpg.Pool) -> None:
    """jsonl keeps lists, numbers and nested crm/extra as they are, and escapes nothing."""
    await update_lead(seeded, A, 1, ctx(A), name="=1+2", crm={"a:b": "c"})
    view = await export(
        api, campaign="north", format="jsonl", fields=["phone_numbers", "name", "priority", "crm"]
    )
    data, content_type = await download(api, view)
    assert content_type == "application/x-ndjson"
    records = [msgspec.json.decode(line) for line in data.splitlines()]
    assert records[0]["name"] == "=1+2"
    assert records[0]["phone_numbers"] == ["+919876543211"]
    assert records[0]["priority"] == 1
    assert records[0]["crm"] == {"a:b": "c"}
    assert set(records[0]) == {
        "lead_id",
        "campaign",
        "status",
        "phone_numbers",
        "name",
        "priority",
        "crm",
        "entry_at",
        "modified_at",
    }


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
async def test_formulas_are_escaped(api: Client, seeded: asyncpg.Pool, file_format: str) -> None:
    """Cells starting with = + - @ tab, CR or LF, their full-width forms, or any of them
    after spaces, are written as text (a leading '), in csv and xlsx; a signed phone number
    and text that only holds such a letter later stay as they are."""
    await update_lead(
        seeded,
        A,
        1,
        ctx(A),
        name='=HYPERLINK("http://x")',
        comments="@SUM(A1)",
        city="  =1+1",
        state="\uff1dSUM(A1)",
        address1="\n=cmd",
    )
    await update_lead(
        seeded,
        A,
        2,
        ctx(A),
        name="+cmd|' /C calc'!A0",
        comments="\tx",
        city="\uff0b1",
        state="a = b",
        address1=" \uff20x",
    )
    view = await export(api, campaign="north", format=file_format)
    data, _ = await download(api, view)
    rows = csv_rows(data) if file_format == "csv" else xlsx_rows(data)
    assert rows[0]["name"] == '\'=HYPERLINK("http://x")'
    assert rows[0]["comments"] == "'@SUM(A1)"
    assert rows[0]["city"] == "'  =1+1"
    assert rows[0]["state"] == "'\uff1dSUM(A1)"
    assert rows[0]["address1"] == "'\n=cmd"
    assert rows[1]["name"] == "'+cmd|' /C calc'!A0"
    assert rows[1]["comments"] == "'\tx"
    assert rows[1]["city"] == "'\uff0b1"
    assert rows[1]["state"] == "a = b"
    assert rows[1]["address1"] == "' \uff20x"
    assert rows[0]["phone_numbers"] == "+919876543211"


@pytest.mark.parametrize("as_of", [False, True])
async def test_a_value_longer_than_an_xlsx_cell_fails_the_xlsx_export_and_not_the_csv(
    api: Client, seeded: asyncpg.Pool, as_of: bool
) -> None:
    """40,000 characters in a lead's comments: the xlsx export fails at once, naming the
    column and the formats that hold it, where it would cut the value; the csv has it whole."""
    await update_lead(seeded, A, 1, ctx(A), comments="x" * 40_000 + "END")
    at = {"as_of": datetime.now(UTC).isoformat()} if as_of else {}
    view = await settled(api, format="xlsx", **at)
    assert (view["state"], view["download_url"]) == ("failed", None)
    assert view["error"] == (
        "comments holds more than 32,767 characters in a lead, more than an xlsx cell holds:"
        " export as csv or jsonl"
    )
    attempts = await seeded.fetchval(
        "SELECT attempts FROM job_queue WHERE job_id = $1", view["export_id"]
    )
    assert attempts == 1
    data, _ = await download(api, await export(api, format="csv", **at))
    assert csv_rows(data)[0]["comments"].endswith("END")


async def test_more_columns_than_an_xlsx_sheet_holds_fails_the_xlsx_export(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """16,400 CRM fields make more columns than a sheet holds: the xlsx export fails saying so,
    where the cells past the last column would be left out."""
    await update_lead(seeded, A, 1, ctx(A), crm={f"f:{n}": "x" for n in range(16_400)})
    view = await settled(api, format="xlsx")
    assert view["state"] == "failed"
    assert view["error"].startswith("the export has 16,4")
    assert view["error"].endswith(
        "columns, more than an xlsx sheet holds (16,384): export as csv or jsonl, or choose"
        " fewer fields"
    )


async def test_fields_and_all_campaigns(api: Client, seeded: asyncpg.Pool) -> None:
    """Without a campaign every campaign of the account is exported; `fields` picks the
    columns (lead id, campaign, status and the times always)."""
    view = await export(api, fields=["name"])
    data, _ = await download(api, view)
    rows = csv_rows(data)
    assert [r["lead_id"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert {r["campaign"] for r in rows} == {"north", "south"}
    assert list(rows[0]) == ["lead_id", "campaign", "status", "name", "entry_at", "modified_at"]
    other = await export(api, KEY_B)
    assert other["rows"] == 1


async def archive(pool: asyncpg.Pool, lead_id: int, *, delete: bool = True) -> None:
    """Archive a lead as the Vicidial archive does: copy into the archive, then (with
    `delete`) safe-delete."""
    async with pool.acquire() as conn:
        stored = await open_pairs(conn, await read_stream(conn, stream_of_lead(lead_id)))
    state = fold(e for _, e in stored if isinstance(e, LeadEvent))
    assert state is not None
    row = await pool.fetchrow("SELECT entry_at, modified_at FROM leads WHERE lead_id = $1", lead_id)
    assert row is not None
    times = RowTimes(entry_at=row["entry_at"], modified_at=row["modified_at"])
    outcome = decide_archive(state, insert=True, update=False, delete=delete, times=times)
    await write(pool, ctx(A), stream_of_lead(lead_id), state.version, outcome.events, A)


async def test_include_archived(api: Client, seeded: asyncpg.Pool) -> None:
    """include_archived adds the archive's leads, marked in an `archived` column, now and as
    of a time after the archive; without it they are not there. A lead archived but still live
    is there once, live, and the two exports are the same bytes."""
    await archive(seeded, 3)
    await archive(seeded, 2, delete=False)
    assert [
        r["lead_id"]
        for r in csv_rows((await download(api, await export(api, campaign="north")))[0])
    ] == ["1", "2"]
    view = await export(api, campaign="north", include_archived=True)
    rows = csv_rows((await download(api, view))[0])
    assert [(r["lead_id"], r["archived"]) for r in rows] == [
        ("1", "false"),
        ("2", "false"),
        ("3", "true"),
    ]
    assert rows[2]["name"] == "Lead 3"
    at = datetime.now(UTC)
    then = await export(api, campaign="north", include_archived=True, as_of=at.isoformat())
    then_file = (await download(api, then))[0]
    assert then_file == (await download(api, view))[0]
    rows = csv_rows(then_file)
    assert [(r["lead_id"], r["archived"], r["name"]) for r in rows] == [
        ("1", "false", "Lead 1"),
        ("2", "false", "Lead 2"),
        ("3", "true", "Lead 3"),
    ]


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        (["name", "priority", "name"], "named twice: name"),
        ([], "fields is empty"),
    ],
)
async def test_fields_named_twice_or_none_are_refused(
    api: Client, seeded: asyncpg.Pool, fields: list[str], detail: str
) -> None:
    """`fields` naming a field twice (a file with two such columns) or none at all (a file
    with no column of a lead) is a 400 naming `fields`, and no export is queued."""
    response = await api.post("/v1/exports", json={"fields": fields}, headers=auth())
    body = await response.json()
    assert (response.status, body["field"]) == (400, "fields"), body
    assert detail in body["detail"]
    assert await seeded.fetchval("SELECT count(*) FROM jobs WHERE kind = 'export'") == 0


async def test_refusals(api: Client, seeded: asyncpg.Pool) -> None:
    """An unknown campaign 404, unknown fields or format 400, another account's export and a
    missing one 404, no key 401."""
    response = await api.post("/v1/exports", json={"campaign": "nope"}, headers=auth())
    assert (response.status, response.content_type) == (404, "application/problem+json")
    response = await api.post("/v1/exports", json={"campaign": "no\u0000rth"}, headers=auth())
    assert (response.status, (await response.json())["field"]) == (404, "campaign")
    response = await api.post("/v1/exports", json={"fields": ["name", "password"]}, headers=auth())
    assert response.status == 400
    assert "password" in (await response.json())["detail"]
    response = await api.post("/v1/exports", json={"format": "pdf"}, headers=auth())
    assert response.status == 400
    response = await api.post("/v1/exports", json={"as_of": "yesterday"}, headers=auth())
    assert response.status == 400
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    response = await api.post("/v1/exports", json={"as_of": future}, headers=auth())
    assert response.status == 400
    assert (await response.json())["field"] == "as_of"
    early = {"as_of": "0001-01-01T00:00:00+05:00"}  # refused at once, not failed when run
    response = await api.post("/v1/exports", json=early, headers=auth())
    assert (response.status, (await response.json())["field"]) == (400, "as_of")
    assert (await api.post("/v1/exports", json={})).status == 401
    view = await export(api, campaign="north")
    assert (await api.get(f"/v1/exports/{view['export_id']}", headers=auth(KEY_B))).status == 404
    assert (
        await api.get(f"/v1/exports/{view['export_id']}/file", headers=auth(KEY_B))
    ).status == 404
    assert (await api.get("/v1/exports/999999", headers=auth())).status == 404
    assert (await api.get("/v1/exports/abc/file", headers=auth())).status == 404


async def test_retention_sweep_removes_the_file(api: Client, seeded: asyncpg.Pool) -> None:
    """A file past its retention is removed by the sweep: its chunks go, JobOutputRemoved is
    recorded, the export reads `removed` and its file is a 404; a newer file stays."""
    old = await export(api, campaign="north")
    async with seeded.acquire() as conn:
        later = datetime.now(UTC) + timedelta(hours=24, minutes=1)
        assert await exports.sweep_expired(conn, datetime.now(UTC), timedelta(hours=24)) == 0
        assert await exports.sweep_expired(conn, later, timedelta(hours=24)) == 1
    got = await (await api.get(f"/v1/exports/{old['export_id']}", headers=auth())).json()
    assert (got["state"], got["download_url"]) == ("removed", None)
    assert got["removed_at"] is not None
    response = await api.get(f"/v1/exports/{old['export_id']}/file", headers=auth())
    assert response.status == 404
    assert await seeded.fetchval("SELECT count(*) FROM job_output_chunks") == 0
    types = await seeded.fetch(
        "SELECT type FROM events WHERE stream_id = $1 ORDER BY stream_version",
        f"job-{old['export_id']}",
    )
    assert [t["type"] for t in types] == ["JobSubmitted", "JobCompleted", "JobOutputRemoved"]


async def test_an_erased_subject_is_empty_in_a_past_export(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """A lead erased after the time asked for is in an as-of export, with its personal data
    empty and its clear fields (priority, status) as they were."""
    at = datetime.now(UTC)
    response = await api.post("/v1/erasures", json={"lead_id": 2}, headers=auth())
    assert response.status == 200, await response.text()
    view = await export(api, campaign="north", as_of=at.isoformat(), format="jsonl")
    records = {
        r["lead_id"]: r
        for r in map(msgspec.json.decode, (await download(api, view))[0].splitlines())
    }
    assert sorted(records) == [1, 2, 3]
    assert (records[2]["name"], records[2]["phone_numbers"], records[2]["user_data"]) == (
        None,
        [],
        None,
    )
    assert (records[2]["priority"], records[2]["status"]) == (1, "new")
    assert records[1]["name"] == "Lead 1"
    read = await as_of_read(api, 2, at)
    assert read is not None
    assert read["name"] is None


@pytest.mark.parametrize("fields", [None, ["name", "priority"]])
async def test_an_export_of_now_is_the_export_as_of_now(
    api: Client, seeded: asyncpg.Pool, fields: list[str] | None
) -> None:
    """A csv of now (rendered by PostgreSQL) and a csv as of a time after the last write
    (folded in Python) are the same bytes: formulas, blanks, lists, numbers, flags, times with
    and without microseconds, CRM and extra fields, a do-not-call mark, a bare carriage return
    in a value and in a CRM name (quoted, so that no reader splits the row)."""
    await update_lead(
        seeded,
        A,
        1,
        ctx(A),
        name="=2+2",
        comments="",
        address1="Line\rBreak",
        city="-12",
        state="  \uff0dx",
        phone_numbers=["+919876543211", "+919876543219"],
        crm={"loan:amount": "@5000", "z:last": "x", "z:cr\rkey": "y"},
        extra={"Count": 7, "Flag": True, "Ratio": 1.5, "Note": "+1 (555)"},
        expires_at="2099-01-31T10:00:00.000120Z",
        priority=9,
    )
    await update_lead(
        seeded, A, 3, ctx(A), email="a@b.c", city=" x", expires_at="2099-01-31T10:00:00Z"
    )
    response = await api.post("/v1/dnc", json=[{"phone": "+919876543212"}], headers=auth())
    assert response.status == 201, await response.text()
    await asyncio.sleep(0.01)
    at = datetime.now(UTC)
    body: dict[str, Any] = {"campaign": "north"} | ({"fields": fields} if fields else {})
    now, _ = await download(api, await export(api, **body))
    then, _ = await download(api, await export(api, **body, as_of=at.isoformat()))
    assert now == then
    rows = csv_rows(now)
    assert [r["status"] for r in rows] == ["new", "DNC", "new"]
    assert now.count(b"\n") == 4  # the header and three leads: no cell ends a line
    if fields is None:
        assert rows[0]["address1"] == "Line\rBreak"
        assert rows[0]["z:cr\rkey"] == "y"
        assert rows[0]["extra:Ratio"] == "1.5"
        assert rows[0]["loan:amount"] == "'@5000"
        assert rows[0]["state"] == "'  \uff0dx"
        assert rows[2]["city"] == " x"
        assert rows[0]["expires_at"] == "2099-01-31T10:00:00.000120Z"


async def test_a_file_removed_while_it_is_read_cuts_the_download(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """Chunks gone after the download began (the sweep between two reads): the connection is
    cut, so the client sees a short body rather than waiting for the rest."""
    view = await export(api, campaign="north")
    await seeded.execute("DELETE FROM job_output_chunks WHERE job_id = $1", view["export_id"])
    response = await api.get(f"/v1/exports/{view['export_id']}/file", headers=auth())
    assert response.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()


async def test_an_account_has_a_bounded_number_of_exports_in_progress(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """Past MAX_EXPORTS_IN_PROGRESS queued or running exports, the next is 429 (one account
    cannot fill the job queue every account shares); another account still exports, and one
    finished makes room again."""
    async with seeded.acquire() as holder:
        # The exports cannot store their files while this is held: they stay in progress.
        await holder.execute("SELECT pg_advisory_lock($1)", export_files_lock_key(A))
        views = []
        for _ in range(exports.MAX_EXPORTS_IN_PROGRESS):
            response = await api.post("/v1/exports", json={}, headers=auth())
            assert response.status == 202, await response.text()
            views.append(await response.json())
        refused = await api.post("/v1/exports", json={}, headers=auth())
        assert (refused.status, refused.content_type) == (429, "application/problem+json")
        assert "in progress" in (await refused.json())["detail"]
        other = await api.post("/v1/exports", json={}, headers=auth(KEY_B))
        assert other.status == 202
        await holder.execute("SELECT pg_advisory_unlock($1)", export_files_lock_key(A))
    async with asyncio.timeout(60):
        while (await seeded.fetchval(exports.COUNT_IN_PROGRESS, A, exports.KIND)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert (await export(api))["state"] == "done"  # room again once they are done


async def test_a_queued_export_has_no_file(seeded: asyncpg.Pool) -> None:
    """A queued export's file is none yet (its output is JSON null), never an error reading it."""
    async with seeded.acquire() as conn:  # no app: no worker takes the job
        export_id = await exports.submit_export(
            conn, ctx(A), A, exports.ExportRequest(campaign="north")
        )
        assert await exports.file_of(conn, A, export_id) is None
