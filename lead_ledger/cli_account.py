"""What the commands that act on one account share: a connection as the service's role, the
account looked up by name or id, and the context their events are recorded with."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.database import DatabaseUrls, database_urls, open_database
from lead_ledger.ledger.envelope import Actor
from lead_ledger.service.account_reads import find_account
from lead_ledger.service.writer import Context
from lead_ledger.settings import Settings


def cli_context() -> Context:
    """The CLI runs as the operator: actor `admin`, a request id of its own."""
    return Context(actor=Actor(dialect="admin"), request_id=f"cli-{uuid.uuid4().hex}")


@asynccontextmanager
async def account_connection(
    settings: Settings, account: str, urls: DatabaseUrls | None = None
) -> AsyncIterator[tuple[Connection, int] | None]:
    """A connection and the account's id; None, once the error is on stderr, when the
    account does not exist. `urls`: the database's, when the caller resolved them already."""
    if urls is None:
        urls = await database_urls(settings)
    pool = await open_database(urls.service, migration_url=urls.migration, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            found = await find_account(conn, account)
            if found is None:
                sys.stderr.write(f"lead-ledger: no account {account!r}\n")
                yield None
            else:
                yield conn, found.id
    finally:
        await pool.close()
