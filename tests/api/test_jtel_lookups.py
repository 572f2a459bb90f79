"""jtel's campaigns and its contacts by UserData through the real app: the list envelope and
one record, paging, the 404, another account's never seen. Every test ends with
`projections verify`."""

from __future__ import annotations

from tests.api.test_jtel import (
    Tenant,
    acme,
    api,
    call,
    contact,
    imported_id,
    other,
)
from tests.support import Client

__all__ = ["acme", "api", "other"]  # fixtures, imported to be found here


async def test_campaigns_list_and_one(api: Client, acme: Tenant, other: Tenant) -> None:
    """The account's campaigns by Name in jtel's envelope, paged; one by ID; another
    account's campaign and an unknown ID are 404."""
    listed = await call(api, "GET", f"{acme.base}/dialler/campaigns", acme, 200)
    assert [r["Name"] for r in listed["records"]] == ["Sales", "Support"]
    assert (listed["count"], listed["limitStart"], listed["limitPageSize"]) == (2, 0, -1)
    assert (listed["filter"], listed["orderBy"], listed["ascending"], listed["status"]) == (
        "",
        "Name",
        True,
        200,
    )
    sales = listed["records"][0]
    assert sales["ID"] == acme.campaigns["Sales"]
    assert sales["ClientsID"] == acme.account_id
    assert (sales["DialMode"], sales["Direction"], sales["bActive"]) == (
        "Progressive",
        "outbound",
        False,
    )
    assert sales["ContactPreviewTime"] is None
    paged = await call(
        api, "GET", f"{acme.base}/dialler/campaigns?limitStart=1&limitPageSize=1", acme, 200
    )
    assert ([r["Name"] for r in paged["records"]], paged["count"]) == (["Support"], 2)
    one = await call(
        api, "GET", f"{acme.base}/dialler/campaigns/{acme.campaigns['Support']}", acme, 200
    )
    assert (one["count"], one["records"][0]["Name"], one["status"]) == (1, "Support", 200)
    for missing in (other.campaigns["Sales"], 999999, "abc"):
        answer = await call(api, "GET", f"{acme.base}/dialler/campaigns/{missing}", acme, 404)
        assert answer == {"status": 404, "error": "Dialler campaign not found"}


async def test_contacts_by_user_data(api: Client, acme: Tenant, other: Tenant) -> None:
    """Every live contact with the UserData, in every campaign or in the one given; none of
    another account's; an unknown campaign is 404."""
    first = await imported_id(api, acme, contact(acme, UserData="U-1", Name="A"))
    second = await imported_id(api, acme, contact(acme, "Support", UserData="U-1", Name="B"))
    await imported_id(api, acme, contact(acme, UserData="U-2"))
    await imported_id(api, other, contact(other, UserData="U-1"))
    everywhere = await call(api, "GET", f"{acme.base}/dialler/contacts?userData=U-1", acme, 200)
    assert [r["ID"] for r in everywhere["records"]] == [first, second]
    assert everywhere["count"] == 2
    in_support = await call(
        api,
        "GET",
        f"{acme.base}/dialler/contacts?userData=U-1&diallerCampaignsID={acme.campaigns['Support']}",
        acme,
        200,
    )
    assert [r["ID"] for r in in_support["records"]] == [second]
    paged = await call(
        api, "GET", f"{acme.base}/dialler/contacts?userData=U-1&limitPageSize=1", acme, 200
    )
    assert ([r["ID"] for r in paged["records"]], paged["count"]) == ([first], 2)
    none = await call(api, "GET", f"{acme.base}/dialler/contacts?userData=nobody", acme, 200)
    assert (none["records"], none["count"]) == ([], 0)
    unknown = await call(
        api,
        "GET",
        f"{acme.base}/dialler/contacts?userData=U-1&diallerCampaignsID={other.campaigns['Sales']}",
        acme,
        404,
    )
    assert unknown == {"status": 404, "error": "Dialler campaign not found"}
