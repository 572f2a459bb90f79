"""Build accounts and campaigns through the real write path, for tests that need them."""

from __future__ import annotations

import asyncpg

from lead_ledger.ledger.envelope import ANY_VERSION, NO_STREAM, Actor
from lead_ledger.ledger.events import (
    AccountCreated,
    AccountSettings,
    CampaignConfig,
    CampaignCreated,
    stream_of_account,
)
from lead_ledger.service.writer import Context, record, stream_append

ADMIN = Context(actor=Actor(dialect="admin"), request_id="test")
NATIVE = Context(actor=Actor(dialect="native", account_id=None), request_id="test")


async def make_account(pool: asyncpg.Pool, name: str = "acme", *, region: str | None = "IN") -> int:
    async with pool.acquire() as conn, conn.transaction():
        account_id: int = await conn.fetchval("SELECT nextval('account_ids')")
        event = AccountCreated(
            account_id=account_id,
            name=name,
            settings=AccountSettings(default_region=region),
        )
        await record(
            conn,
            [
                stream_append(
                    ADMIN, stream_of_account(account_id), NO_STREAM, [event], account_id=account_id
                )
            ],
        )
    return account_id


async def make_campaign(
    pool: asyncpg.Pool, account_id: int, name: str = "sales", **config: object
) -> int:
    async with pool.acquire() as conn, conn.transaction():
        campaign_id: int = await conn.fetchval("SELECT nextval('campaign_ids')")
        event = CampaignCreated(
            account_id=account_id,
            campaign_id=campaign_id,
            config=CampaignConfig(name=name, **config),  # type: ignore[arg-type]
        )
        await record(
            conn,
            [
                stream_append(
                    ADMIN,
                    stream_of_account(account_id),
                    ANY_VERSION,
                    [event],
                    account_id=account_id,
                )
            ],
        )
    return campaign_id
