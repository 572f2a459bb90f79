"""`serve` with a read replica that does not answer when it starts: it starts all the same, and
the reads the replica would serve are served by the primary, as when it goes down later."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from lead_ledger.api.app import create_app
from lead_ledger.settings import Settings
from tests.api.test_ozonetel_add import add, make_account
from tests.support import Client

NOWHERE = "postgresql://postgres@127.0.0.1:9/nothing"  # the discard port: nothing answers


async def test_an_unreachable_replica_leaves_the_reads_to_the_primary(
    settings: Settings, database_url: str, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    """The app comes up, and a lead list routed to the replica is the primary's."""
    with_replica = msgspec.structs.replace(settings, read_database_url=NOWHERE)
    client = await aiohttp_client(create_app(with_replica, database_url))
    acme = await make_account(client)
    await add(client, acme, Name="Asha", phoneNumber="9876543210")
    response = await client.get("/v1/leads", headers={"Authorization": f"Bearer {acme.native_key}"})
    assert response.status == 200, await response.text()
    assert response.headers["X-Ledger-Read-From"] == "primary"
    assert [lead["name"] for lead in (await response.json())["leads"]] == ["Asha"]
