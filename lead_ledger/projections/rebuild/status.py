"""`status`: rows, last rebuild and log head per projection, and whether a rebuild runs now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from lead_ledger.ledger.connection import Connection
from lead_ledger.projections.gate import REBUILD_LOCK_KEY
from lead_ledger.projections.rebuild.shadow import connection
from lead_ledger.projections.rebuild.swap import SELECT_HEAD
from lead_ledger.projections.registry import PROJECTIONS

SELECT_CHECKPOINTS: Final = "SELECT name, position, rows, rebuilt_at FROM projection_checkpoints"
SELECT_REBUILDING: Final = """
SELECT EXISTS (
    SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database
    WHERE l.locktype = 'advisory' AND d.datname = current_database()
      AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 1
)
"""


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    table: str
    rows: int
    checkpoint_position: int | None  # the log head the last rebuild's tables reflected
    rebuilt_at: datetime | None
    head: int  # the highest position in the log
    # Inline projections commit with their events, so the live tables are never behind: 0.
    lag: int
    rebuilding: bool  # a rebuild or verify holds the rebuild lock right now


async def status(pool_or_conn: asyncpg.Pool | Connection) -> list[ProjectionStatus]:
    async with connection(pool_or_conn) as conn:
        head: int = await conn.fetchval(SELECT_HEAD)
        checkpoints = {r["name"]: r for r in await conn.fetch(SELECT_CHECKPOINTS)}
        rebuilding: bool = await conn.fetchval(
            SELECT_REBUILDING, REBUILD_LOCK_KEY >> 32, REBUILD_LOCK_KEY & 0xFFFF_FFFF
        )
        result = []
        for p in PROJECTIONS:
            rows: int = await conn.fetchval(f"SELECT count(*) FROM public.{p.table}")
            checkpoint = checkpoints.get(p.name)
            result.append(
                ProjectionStatus(
                    name=p.name,
                    table=p.table,
                    rows=rows,
                    checkpoint_position=checkpoint["position"] if checkpoint else None,
                    rebuilt_at=checkpoint["rebuilt_at"] if checkpoint else None,
                    head=head,
                    lag=0,
                    rebuilding=rebuilding,
                )
            )
        return result
