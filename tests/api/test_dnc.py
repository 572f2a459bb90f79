"""The native do-not-call registry through the real app: entries added all or none, listed,
checked in any spelling, changed, expired and removed, each as an event, sealed in the log,
and a removed number erased for good."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.api.test_ozonetel_add import Account, make_account
from tests.support import Client

DNC = "/v1/dnc"


@pytest.fixture
async def acme(client: Client) -> Account:
    return await make_account(client)


def native(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.native_key}"}


async def add_entries(client: Client, account: Account, entries: object) -> list[dict[str, Any]]:
    response = await client.post(DNC, json=entries, headers=native(account))
    assert response.status == 201, await response.text()
    added: list[dict[str, Any]] = (await response.json())["entries"]
    return added


async def check(client: Client, account: Account, phone: str, campaign: str | None = None) -> Any:
    params = {"phone": phone} | ({"campaign": campaign} if campaign else {})
    response = await client.get(f"{DNC}/check", params=params, headers=native(account))
    assert response.status == 200, await response.text()
    return await response.json()


async def test_a_number_blocked_account_wide_is_blocked_in_any_spelling_and_campaign(
    client: Client, acme: Account
) -> None:
    """One entry without a campaign blocks the number everywhere, however it is written."""
    (entry,) = await add_entries(client, acme, [{"phone": "98765 43210"}])
    assert entry["phone"] == "+919876543210"
    assert entry["campaign"] is None
    assert entry["status"] == "Active"
    assert entry["blocking"] is True
    assert entry["source"] == "native"
    for spelling in ("9876543210", "+91 98765-43210", "09876543210", "919876543210"):
        answer = await check(client, acme, spelling, "sales")
        assert answer["blocked"] is True, spelling
        assert [e["entry_id"] for e in answer["entries"]] == [entry["entry_id"]]
    assert (await check(client, acme, "9876543210"))["blocked"] is True
    assert (await check(client, acme, "9812345678", "sales"))["blocked"] is False


async def test_a_campaign_entry_blocks_only_that_campaign(client: Client, acme: Account) -> None:
    """Blocked in `sales`, dialable in `second` and not blocked account-wide."""
    await add_entries(client, acme, [{"phone": "9876543210", "campaign": "sales"}])
    assert (await check(client, acme, "9876543210", "sales"))["blocked"] is True
    assert (await check(client, acme, "9876543210", "second"))["blocked"] is False
    assert (await check(client, acme, "9876543210"))["blocked"] is False


async def test_inactive_and_expired_entries_do_not_block(client: Client, acme: Account) -> None:
    """Only an Active entry that has not expired blocks; an expiry passes without any job."""
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    added = await add_entries(
        client,
        acme,
        [
            {"phone": "9876500001", "status": "Inactive"},
            {"phone": "9876500002", "expires_at": past},
            {"phone": "9876500003", "expires_at": future},
        ],
    )
    assert [e["blocking"] for e in added] == [False, False, True]
    assert (await check(client, acme, "9876500001", "sales"))["blocked"] is False
    assert (await check(client, acme, "9876500002", "sales"))["blocked"] is False
    assert (await check(client, acme, "9876500003", "sales"))["blocked"] is True


async def test_a_batch_is_added_all_or_none(
    client: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """The first entry at fault refuses the batch, named by its index; nothing is stored."""
    await add_entries(client, acme, [{"phone": "9876543210"}])
    cases = [
        ([{"phone": "9812345678"}, {"phone": "98765-43210"}], "$[1].phone", "already"),
        ([{"phone": "9812345678"}, {"phone": "not a number"}], "$[1].phone", "not a phone"),
        ([{"phone": "9812345678"}, {"phone": "12"}], "$[1].phone", "not a phone"),
        ([{"phone": "9812345678", "campaign": "nope"}], "$[0].campaign", "no campaign"),
        ([{"phone": "9812345678"}, {"phone": "9812345678"}], "$[1].phone", "already"),
        # Mistyped, missing and unknown members are named the same way.
        ([{"phone": "9812345678"}, {"phone": "9", "status": "bogus"}], "$[1].status", "enum"),
        ([{"phone": "9812345678", "expires_at": "nope"}], "$[0].expires_at", "datetime"),
        ([{"phone": "9812345678"}, {}], "$[1].phone", "missing required field"),
        ([{"phone": "9812345678", "bogus": 1}], "$[0].bogus", "unknown field"),
        # A time an offset moves past the years 1-9999 in UTC.
        (
            [{"phone": "9812345678"}, {"phone": "9", "expires_at": "9999-12-31T23:59:59-05:00"}],
            "$[1].expires_at",
            "is out of range",
        ),
    ]
    for body, field, detail in cases:
        response = await client.post(DNC, json=body, headers=native(acme))
        assert response.status == 400, body
        assert response.content_type == "application/problem+json"
        problem = await response.json()
        assert problem["field"] == field, problem
        assert detail in problem["detail"], problem
    assert await pool.fetchval("SELECT count(*) FROM dnc") == 1
    assert await pool.fetchval("SELECT count(*) FROM events WHERE type = 'DncNumberAdded'") == 1
    # The same number in another scope is another entry.
    await add_entries(client, acme, [{"phone": "9876543210", "campaign": "sales"}])


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b"[]",
        b'[{"phone": 9876543210}]',
        b'[{"phone": "9876543210", "bogus": 1}]',
        b'[{"phone": "9876543210", "status": "Maybe"}]',
        b'[{"phone": "98765\\u000043210"}]',
    ],
)
async def test_malformed_bodies_are_problems(client: Client, acme: Account, body: bytes) -> None:
    """Each is a 400 problem, never a 500, and stores nothing."""
    response = await client.post(DNC, data=body, headers=native(acme))
    assert response.status == 400, await response.text()
    assert response.content_type == "application/problem+json"


async def test_changes_and_removal_are_events_and_reads_follow(
    client: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """Inactive stops blocking, Active again blocks, an expiry set and cleared; a change to
    what the entry already holds answers it as it is and records nothing; removed, the entry
    neither blocks nor lists, and a second removal is a 404."""
    (entry,) = await add_entries(client, acme, [{"phone": "9876543210"}])
    path = f"{DNC}/{entry['entry_id']}"
    response = await client.patch(path, json={"status": "Inactive"}, headers=native(acme))
    assert response.status == 200
    assert (await response.json())["blocking"] is False
    assert (await check(client, acme, "9876543210", "sales"))["blocked"] is False
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    response = await client.patch(
        path, json={"status": "Active", "expires_at": past}, headers=native(acme)
    )
    assert (await response.json())["blocking"] is False
    response = await client.patch(path, json={"expires_at": None}, headers=native(acme))
    changed = await response.json()
    assert (changed["status"], changed["expires_at"], changed["blocking"]) == ("Active", None, True)
    same = await client.patch(path, json={"status": "Active"}, headers=native(acme))
    assert (same.status, await same.json()) == (200, changed)
    assert (await client.patch(path, json={}, headers=native(acme))).status == 400
    early = {"expires_at": "0001-01-01T00:00:00+01:00"}  # before year 1 in UTC
    response = await client.patch(path, json=early, headers=native(acme))
    assert (response.status, (await response.json())["field"]) == (400, "expires_at")
    assert (await client.delete(path, headers=native(acme))).status == 204
    assert (await check(client, acme, "9876543210", "sales"))["blocked"] is False
    listed = await client.get(DNC, headers=native(acme))
    assert (await listed.json())["entries"] == []
    assert (await client.delete(path, headers=native(acme))).status == 404
    assert (await client.patch(path, json={"status": "Active"}, headers=native(acme))).status == 404
    types = await pool.fetch(
        "SELECT type FROM events WHERE stream_id = $1 ORDER BY stream_version",
        f"dnc-{entry['entry_id']}",
    )
    assert [r["type"] for r in types] == [
        "DncNumberAdded",
        "DncNumberChanged",
        "DncNumberChanged",
        "DncNumberChanged",
        "DncNumberRemoved",
    ]


async def test_listing_pages_and_filters(client: Client, acme: Account) -> None:
    """Keyset pages in entry order; filters by campaign, phone (any spelling) and status."""
    added = await add_entries(
        client,
        acme,
        [{"phone": f"98765000{n:02d}", "campaign": "sales" if n % 2 else None} for n in range(5)]
        + [{"phone": "9812345678", "status": "Inactive"}],
    )
    ids = [e["entry_id"] for e in added]
    seen: list[int] = []
    after = 0
    while True:
        response = await client.get(DNC, params={"limit": 2, "after": after}, headers=native(acme))
        page = await response.json()
        seen.extend(e["entry_id"] for e in page["entries"])
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == ids
    sales = await client.get(DNC, params={"campaign": "sales"}, headers=native(acme))
    assert [e["entry_id"] for e in (await sales.json())["entries"]] == [ids[1], ids[3]]
    phone = await client.get(DNC, params={"phone": "+91 98123 45678"}, headers=native(acme))
    assert [e["entry_id"] for e in (await phone.json())["entries"]] == [ids[5]]
    inactive = await client.get(DNC, params={"status": "Inactive"}, headers=native(acme))
    assert [e["entry_id"] for e in (await inactive.json())["entries"]] == [ids[5]]
    unknown = await client.get(DNC, params={"campaign": "nope"}, headers=native(acme))
    assert unknown.status == 404


async def test_accounts_do_not_see_each_others_registry(client: Client, acme: Account) -> None:
    """Another account's number is not blocked here, and its entry is a 404 here."""
    other = await make_account(client, "other")
    (entry,) = await add_entries(client, other, [{"phone": "9876543210"}])
    assert (await check(client, acme, "9876543210", "sales"))["blocked"] is False
    path = f"{DNC}/{entry['entry_id']}"
    assert (await client.delete(path, headers=native(acme))).status == 404
    assert (await client.get(DNC, headers=native(acme))).status == 200
    assert (await (await client.get(DNC, headers=native(acme))).json())["entries"] == []


async def test_the_number_is_sealed_in_the_log_and_erased_only_after_removal(
    client: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """The log holds the entry's number sealed. Erasing the person keeps a live entry (it is
    what keeps them from being called); removed and then erased, the number is gone from the
    log for good."""
    (entry,) = await add_entries(client, acme, [{"phone": "9876543210"}])
    stored = await pool.fetchval("SELECT data::text FROM events WHERE type = 'DncNumberAdded'")
    assert "9876543210" not in stored
    audit = await client.get("/v1/audit", params={"type": "DncNumberAdded"}, headers=native(acme))
    assert (await audit.json())["events"][0]["data"]["number"] == "+919876543210"
    erased = await client.post("/v1/erasures", json={"phone": "9876543210"}, headers=native(acme))
    assert (await erased.json())["subjects"] == 0
    assert (await check(client, acme, "9876543210", "sales"))["blocked"] is True
    await client.delete(f"{DNC}/{entry['entry_id']}", headers=native(acme))
    erased = await client.post("/v1/erasures", json={"phone": "98765 43210"}, headers=native(acme))
    assert (await erased.json())["subjects"] == 1
    subject = f"dnc-{entry['entry_id']}"
    key = await pool.fetchval("SELECT wrapped_key FROM subject_keys WHERE subject_id = $1", subject)
    assert key is None
    # The audit still shows that the number was added, and by whom, but not the number.
    audit = await client.get("/v1/audit", params={"type": "DncNumberAdded"}, headers=native(acme))
    (shown,) = (await audit.json())["events"]
    assert shown["data"]["erased"] is True
    assert shown["data"]["number"] is None
    assert "9876543210" not in await audit.text()
