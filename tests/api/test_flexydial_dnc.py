"""Flexydial's DNC API through the real app: upload-dnc and remove-dnc all or nothing, with the
vendor's answers, onto the same registry every dialect's inserts check."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.api.test_flexydial import Tenant, tenant
from tests.api.test_flexydial_jobs import COMPLETED, api, insert
from tests.support import Client

__all__ = ["api"]  # the fixture, imported to be found here

UPLOAD = "/api/upload-dnc/"
REMOVE = "/api/remove-dnc/"
PROCESSED = {"detail": "Data processed successfully"}
REMOVED = {"detail": "DNC numbers removed successfully"}


async def post(api: Client, who: Tenant, path: str, body: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Token {who.token}"}
    sent = {"data": body} if isinstance(body, bytes) else {"json": body}
    response = await api.post(path, headers=headers, **sent)
    return response.status, await response.json()


async def entries(api: Client, who: Tenant) -> list[tuple[str, str | None, str, bool]]:
    response = await api.get("/v1/dnc", headers=who.native)
    return [
        (e["phone"], e["campaign"], e["status"], e["blocking"])
        for e in (await response.json())["entries"]
    ]


async def test_an_end_date_of_9999_12_31_blocks_for_ever(api: Client) -> None:
    """The last day there is: the entry blocks through it, to the last moment a time holds,
    where the day after it would be past the calendar (a 500 before)."""
    acme = await tenant(api)
    body = [{"numeric": "6300868450", "global_dnc": "true", "dnc_end_date": "9999-12-31"}]
    assert await post(api, acme, UPLOAD, body) == (200, PROCESSED)
    assert await entries(api, acme) == [("+916300868450", None, "Active", True)]


async def test_upload_adds_global_and_campaign_entries_that_inserts_honour(api: Client) -> None:
    """The vendor's example body: a global entry (here Inactive) and a campaign one; flags in
    any case; several campaigns at once; an end date in the past blocks nothing."""
    acme = await tenant(api)
    body = [
        {"numeric": "6300868437", "campaign": "", "global_dnc": "true", "status": "Inactive"},
        {"numeric": "6300868438", "campaign": "sales", "global_dnc": "false", "status": "Active"},
        {"numeric": "6300868439", "campaign": "sales, open", "global_dnc": "FALSE"},
        {"numeric": "6300868440", "global_dnc": "True", "dnc_end_date": "2020-01-31"},
        {"numeric": "6300868441", "global_dnc": "TRUE"},
        # JSON booleans read as Flexydial's Python reads any value: str(True).lower() is "true".
        {"numeric": "6300868442", "global_dnc": True},
        {"numeric": "6300868443", "campaign": "open", "global_dnc": False},
    ]
    assert await post(api, acme, UPLOAD, body) == (200, PROCESSED)
    assert await entries(api, acme) == [
        ("+916300868437", None, "Inactive", False),
        ("+916300868438", "sales", "Active", True),
        ("+916300868439", "sales", "Active", True),
        ("+916300868439", "open", "Active", True),
        ("+916300868440", None, "Active", False),
        ("+916300868441", None, "Active", True),
        ("+916300868442", None, "Active", True),
        ("+916300868443", "open", "Active", True),
    ]
    result = await insert(
        api,
        acme,
        {"numeric": "6300868437"},
        {"numeric": "6300868438"},
        {"numeric": "6300868440"},
        {"numeric": "6300868441"},
    )
    assert result["improper_data"] == [
        {
            "numeric": "6300868438",
            "description": '{"number": "This number is blocked in this campaign"}',
        },
        {"numeric": "6300868441", "description": '{"number": "This number is blocked globally"}'},
    ]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"not json", "Invalid request structure"),
        ({"numeric": "6300868437"}, "Invalid request structure"),
        ([], "Invalid request structure"),
        (["6300868437"], "Invalid request structure"),
        ([{"numeric": "", "global_dnc": "true"}], "Enter Valid Number"),
        ([{"numeric": "63008abc", "global_dnc": "true"}], "Enter Valid Number"),
        (
            [{"numeric": 6300868437, "global_dnc": 1}],
            "Global_dnc values should be TRUE or FALSE",
        ),
        (
            [{"numeric": "6300868437", "global_dnc": "yes"}],
            "Global_dnc values should be TRUE or FALSE",
        ),
        (
            [{"numeric": "6300868437", "global_dnc": "false"}],
            "Atleast provide one campaign or global_dnc as TRUE",
        ),
        ([{"numeric": "6300868437", "campaign": "nope"}], "Campaign with this name is not exists"),
        (
            [{"numeric": "6300868450", "global_dnc": "true"}, {"numeric": "6300868437"}],
            "Atleast provide one campaign or global_dnc as TRUE",
        ),
    ],
)
async def test_a_faulty_item_refuses_the_whole_upload(
    api: Client, pool: asyncpg.Pool, body: Any, detail: str
) -> None:
    """400 with the vendor's text for the first item at fault; nothing stored."""
    acme = await tenant(api)
    assert await post(api, acme, UPLOAD, body) == (400, {"detail": detail})
    assert await pool.fetchval("SELECT count(*) FROM dnc") == 0


async def test_a_number_already_in_the_scope_names_it(api: Client, pool: asyncpg.Pool) -> None:
    """Already there (in any spelling), or twice in the upload: refused, naming the number as
    sent; the same number in another scope is fine."""
    acme = await tenant(api)
    assert await post(api, acme, UPLOAD, [{"numeric": "6300868437", "global_dnc": "true"}]) == (
        200,
        PROCESSED,
    )
    again = [
        {"numeric": "6300868499", "campaign": "sales"},
        {"numeric": "+91 63008 68437", "global_dnc": "true"},
    ]
    assert await post(api, acme, UPLOAD, again) == (
        400,
        {"detail": "DNC number +91 63008 68437 already exists."},
    )
    twice = [
        {"numeric": "6300868438", "campaign": "sales"},
        {"numeric": "6300868438", "campaign": "sales"},
    ]
    assert await post(api, acme, UPLOAD, twice) == (
        400,
        {"detail": "DNC number 6300868438 already exists."},
    )
    assert await pool.fetchval("SELECT count(*) FROM dnc") == 1
    other_scope = [{"numeric": "6300868437", "campaign": "sales"}]
    assert await post(api, acme, UPLOAD, other_scope) == (200, PROCESSED)


async def test_remove_takes_numbers_off_all_or_nothing(api: Client) -> None:
    """Removing a number removes its entries (only a campaign's when one is named); a number
    with no entry refuses the whole request, naming it."""
    acme = await tenant(api)
    body = [
        {"numeric": "6300868437", "global_dnc": "true"},
        {"numeric": "6300868437", "campaign": "sales,open"},
        {"numeric": "6300868438", "global_dnc": "true"},
    ]
    assert await post(api, acme, UPLOAD, body) == (200, PROCESSED)
    missing = [{"numeric": "6300868438"}, {"numeric": "6300868499"}]
    assert await post(api, acme, REMOVE, missing) == (
        400,
        {"detail": "DNC number 6300868499 does not exist."},
    )
    assert len(await entries(api, acme)) == 4
    assert await post(api, acme, REMOVE, [{"numeric": "6300868437", "campaign": "open"}]) == (
        200,
        REMOVED,
    )
    assert [(p, c) for p, c, _, _ in await entries(api, acme)] == [
        ("+916300868437", None),
        ("+916300868437", "sales"),
        ("+916300868438", None),
    ]
    assert await post(
        api, acme, REMOVE, [{"numeric": "06300868437"}, {"numeric": "6300868438"}]
    ) == (
        200,
        REMOVED,
    )
    assert await entries(api, acme) == []
    assert await insert(api, acme, {"numeric": "6300868437"}) == COMPLETED


async def test_the_routes_take_the_flexydial_token(api: Client) -> None:
    """Without a token: DRF's 401."""
    response = await api.post(UPLOAD, json=[{"numeric": "6300868437", "global_dnc": "true"}])
    assert response.status == 401
    assert await response.json() == {"detail": "Authentication credentials were not provided."}
