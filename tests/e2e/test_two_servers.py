"""Two `serve` processes on one database, racing over the same leads: liveness is decided under
the campaign locks, so a lead another request removed is "missing", never a failure."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any

import aiohttp
import asyncpg
import msgspec

from lead_ledger.api.auth import key_digest
from lead_ledger.ledger.envelope import ANY_VERSION
from lead_ledger.ledger.events import CredentialIssued, Dialect, LeadFields, stream_of_account
from lead_ledger.service import lead_inserts
from lead_ledger.service.writer import record, stream_append
from tests.factories import ADMIN, make_account, make_campaign
from tests.support import serve_process, stop, until_ready

MISSING = "lead_ids does not exist"
ARCHIVED = "lead_ids batch was successfully processed"


async def _tenant(pool: asyncpg.Pool, leads: int) -> tuple[int, list[int]]:
    """An account with vicidial and jtel keys (`vici`, `jtel`) and `leads` live leads."""
    account_id = await make_account(pool, "acme")
    campaign_id = await make_campaign(pool, account_id, "sales")
    dialects: list[Dialect] = ["vicidial", "jtel"]
    issued = [
        CredentialIssued(
            account_id=account_id,
            credential_id=dialect,
            dialect=dialect,
            key_sha256=key_digest(dialect[:4]),
        )
        for dialect in dialects
    ]
    rows = [LeadFields(phone_numbers=[f"+9198{i:08d}"], name=f"Lead {i}") for i in range(leads)]
    async with pool.acquire() as conn, conn.transaction():
        append = stream_append(
            ADMIN, stream_of_account(account_id), ANY_VERSION, issued, account_id=account_id
        )
        await record(conn, [append])
        result = await lead_inserts.insert_leads(
            conn,
            ADMIN,
            account_id=account_id,
            campaign_id=campaign_id,
            rows=rows,
            check_duplicates=False,
        )
    return account_id, [result.inserted[i] for i in range(leads)]


async def test_overlapping_archives_and_deletes_on_two_servers_never_fail(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """Vicidial archive+delete calls with overlapping ids and jtel deletes of the same contacts,
    spread over two servers: every answer is a success or the dialect's "not there" (Vicidial's
    400 "lead_ids does not exist", jtel's 404), each lead is deleted exactly once, and both
    servers still answer."""
    account_id, lead_ids = await _tenant(pool, 80)
    archive_ids, delete_ids = lead_ids[:40], lead_ids[40:]
    servers = [serve_process(database_url), serve_process(database_url)]
    try:
        await asyncio.gather(*(until_ready(served) for served in servers))
        bases = itertools.cycle([served.base_url for served in servers])
        async with aiohttp.ClientSession() as session:

            async def archive(base: str, ids: list[int]) -> tuple[int, Any]:
                body = {
                    "lead_ids": ids,
                    "insert_leads": True,
                    "update_leads": True,
                    "delete_leads": True,
                }
                headers = {"Authorization": "Key=vici"}
                url = f"{base}/vicidial/leads/archive"
                async with session.post(url, json=body, headers=headers) as response:
                    return response.status, msgspec.json.decode(await response.read())

            async def delete(base: str, lead_id: int) -> int:
                url = f"{base}/rest/v1.0/{account_id}/dialler/contacts/contact/{lead_id}"
                headers = {"Authorization": "Bearer jtel"}
                async with session.delete(url, headers=headers) as response:
                    await response.read()
                    return response.status

            # Windows of four ids, each one sliding by two: every id is in two requests, and
            # each window is sent four times, to both servers.
            windows = [archive_ids[i : i + 4] for i in range(0, len(archive_ids) - 2, 2)]
            archives = [archive(next(bases), w) for w in windows for _ in range(4)]
            deletes = [delete(next(bases), i) for i in delete_ids for _ in range(6)]
            archived, deleted = await asyncio.gather(
                asyncio.gather(*archives), asyncio.gather(*deletes)
            )
            for served in servers:
                async with session.get(f"{served.base_url}/healthz") as response:
                    assert response.status == 200
    finally:
        for served in servers:
            stop(served)

    assert Counter(deleted) == {200: len(delete_ids), 404: 5 * len(delete_ids)}
    outcomes = Counter((status, body["message"]) for status, body in archived)
    assert set(outcomes) <= {(200, ARCHIVED), (400, MISSING)}, outcomes
    # A request archives all of its window or, refused, writes nothing.
    assert all(body.get("delete_count", 4) == 4 for _, body in archived)
    done = sum(body.get("delete_count", 0) for _, body in archived)
    assert await pool.fetchval("SELECT count(*) FROM lead_archive") == done
    # Every lead is in exactly one place: live (its windows lost their races) or archived.
    live = await pool.fetchval("SELECT count(*) FROM leads")
    both = "SELECT count(*) FROM leads JOIN lead_archive USING (lead_id)"
    assert (live, await pool.fetchval(both)) == (len(archive_ids) - done, 0)
