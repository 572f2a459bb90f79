"""Ozonetel deleteCampaignData through the real app: every answer in the vendor's order, the
leads of a number (any spelling, and the name when given) deleted from every read and kept in
their history, the account's own rate limit. Every test ends with `projections verify`."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
import pytest

from lead_ledger.api.ozonetel_delete import PATH
from tests.api.test_ozonetel_add import (
    RATE_LIMITED,
    Account,
    acme,
    add,
    admin,
    api,
    make_account,
    make_client,
)
from tests.support import Client, fresh_minute

__all__ = ["acme", "api", "make_client"]  # fixtures, imported to be found here

DELETED = {"status": "Success", "message": "Deleted Successfully"}
NOT_FOUND = {"status": "Error", "message": "No Record Found"}
INVALID_JSON = {"status": "false", "message": "Invalid Json Pass Valid Json", "data": None}
INVALID_USER = {"status": "false", "message": "Invalid User Details", "data": None}


def body(account: Account, **fields: object) -> dict[str, object]:
    base = {"userName": account.name, "campaignName": "sales", "phoneNumber": "9876543210"}
    return {k: v for k, v in (base | fields).items() if v is not ...}


async def delete(
    api: Client, account: Account | None, payload: object, **headers: str
) -> tuple[int, Any]:
    sent = {"apiKey": account.key} if account else {}
    if isinstance(payload, bytes):
        response = await api.delete(PATH, data=payload, headers=sent | headers)
    else:
        response = await api.delete(PATH, json=payload, headers=sent | headers)
    return response.status, await response.json()


async def live_numbers(api: Client, account: Account) -> list[list[str]]:
    headers = {"Authorization": f"Bearer {account.native_key}"}
    response = await api.get("/v1/leads?limit=1000", headers=headers)
    assert response.status == 200
    return [lead["phone_numbers"] for lead in (await response.json())["leads"]]


async def test_deletes_every_lead_of_the_number_in_any_spelling(
    api: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """Two leads of one number in the campaign (and one in another campaign): the two are
    deleted (reason api, by the ozonetel key), the other stays; history keeps them."""
    for campaign in ("sales", "sales", "second"):
        assert (await add(api, acme, campaignName=campaign))["status"] == "Success"
    assert (await add(api, acme, phoneNumber="9812345678"))["status"] == "Success"
    answer = await delete(api, acme, body(acme, phoneNumber="+91 98765-43210"))
    assert answer == (200, DELETED)
    assert sorted(await live_numbers(api, acme)) == [["9812345678"], ["9876543210"]]
    rows = await pool.fetch(
        "SELECT data, metadata FROM events WHERE type = 'LeadDeleted' ORDER BY position"
    )
    assert len(rows) == 2
    for row in rows:
        assert msgspec.json.decode(row["data"])["reason"] == "api"
        assert msgspec.json.decode(row["metadata"])["actor"]["dialect"] == "ozonetel"
    assert await delete(api, acme, body(acme)) == (200, NOT_FOUND)


async def test_a_name_narrows_the_match(api: Client, acme: Account) -> None:
    """With `name`, only the number's leads of that name are deleted."""
    await add(api, acme, Name="Asha")
    await add(api, acme, Name="Ravi")
    assert await delete(api, acme, body(acme, name="Nobody")) == (200, NOT_FOUND)
    assert await delete(api, acme, body(acme, name="Asha")) == (200, DELETED)
    assert await live_numbers(api, acme) == [["9876543210"]]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"userName": ...},
            {"status": "false", "message": "Username Should Not be Null or Empty.", "data": None},
        ),
        (
            {"userName": " "},
            {"status": "false", "message": "Username Should Not be Null or Empty.", "data": None},
        ),
        ({"userName": "globex"}, INVALID_USER),
        (
            {"campaignName": ...},
            {"status": "Error", "message": "Campaign should not be null are empty"},
        ),
        ({"campaignName": "nope"}, {"status": "Error", "message": "Passed campaign are invalid"}),
        (
            {"phoneNumber": ...},
            {"status": "Error", "message": "PhoneNumber should not be null are empty"},
        ),
        (
            {"phoneNumber": ""},
            {"status": "Error", "message": "PhoneNumber should not be null are empty"},
        ),
        ({"phoneNumber": ["9876543210", "9812345678"]}, INVALID_JSON),
    ],
)
async def test_each_check_answers_in_the_vendors_words(
    api: Client, acme: Account, fields: dict[str, object], expected: dict[str, object]
) -> None:
    """Checks 3-8 in order, each refusing with its own pair and deleting nothing."""
    await add(api, acme)
    assert await delete(api, acme, body(acme, **fields)) == (200, expected)
    assert await live_numbers(api, acme) == [["9876543210"]]


async def test_keys_and_bodies(api: Client, acme: Account) -> None:
    """No key, an empty key (one that matches no user, as AddCampaignData's seed lists it), an
    unknown key, another account's key, a body that is not JSON."""
    globex = await make_account(api, "globex")
    assert await delete(api, None, body(acme)) == (
        200,
        {"status": "false", "message": "Api Key Should Not be Null or Empty.", "data": None},
    )
    assert await delete(api, None, body(acme), apiKey="") == (200, INVALID_USER)
    assert await delete(api, None, body(acme), apiKey="nope") == (200, INVALID_USER)
    assert await delete(api, globex, body(acme)) == (200, INVALID_USER)
    assert await delete(api, acme, b"{not json") == (200, INVALID_JSON)
    assert await delete(api, acme, b"[]") == (200, INVALID_JSON)


async def test_its_own_rate_limit(api: Client, acme: Account) -> None:
    """Past ozonetel_delete_per_minute: 429 Request limit exhausted, nothing deleted."""
    await admin(
        api, "PATCH", "/accounts/acme/settings", {"rate_limits": {"ozonetel_delete_per_minute": 1}}
    )
    await fresh_minute()
    await add(api, acme)
    await add(api, acme, phoneNumber="9812345678")
    assert await delete(api, acme, body(acme)) == (200, DELETED)
    status, answer = await delete(api, acme, body(acme, phoneNumber="9812345678"))
    assert (status, answer) == (429, RATE_LIMITED)
    assert await live_numbers(api, acme) == [["9812345678"]]
