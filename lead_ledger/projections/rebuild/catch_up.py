"""Catch-up: events of transactions from the fence on, refolded stream by stream.

They are read like the global feed ((xid, position) order, below the visibility fence). Feed
order is not stream order (a transaction that got its xid early can append to a stream after a
younger one did), so each touched stream is refolded whole, in version order, with the
projections' own fold and write, and its keys' rows replaced. That is idempotent, so re-reading
a stream is always safe, and it replaces whatever the bulk phase built for those keys.
"""

from __future__ import annotations

import contextlib
from typing import Final

from lead_ledger.ledger.connection import Connection
from lead_ledger.projections.base import SHADOW_SCHEMA, Rows
from lead_ledger.projections.rebuild.replay import SELECT_STREAMS, opened_pairs
from lead_ledger.projections.rebuild.shadow import Shadow

# The feed from (xid, position) on; `$3` drops the visibility fence, for the final catch-up
# under the write gate and the events lock, when no writer can be in flight.
SELECT_CATCH_UP: Final = """
SELECT position, stream_id, transaction_id
FROM events
WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
  AND ($3::boolean OR transaction_id < pg_snapshot_xmin(pg_current_snapshot()))
  AND type = ANY($4::text[])
ORDER BY transaction_id, position
LIMIT $5
"""


async def catch_up(conn: Connection, shadow: Shadow, *, final: bool, batch: int) -> int:
    """One feed batch: refold the streams it touches into the shadow tables."""
    async with contextlib.AsyncExitStack() as stack:
        if not conn.is_in_transaction():
            await stack.enter_async_context(conn.transaction())
        xid, position = shadow.cursor
        feed = await conn.fetch(SELECT_CATCH_UP, xid, position, final, shadow.types, batch)
        if not feed:
            return 0
        shadow.cursor = (feed[-1]["transaction_id"], feed[-1]["position"])
        shadow.report.caught_up += len(feed)
        shadow.report.position = max(shadow.report.position, *(r["position"] for r in feed))
        streams = sorted({r["stream_id"] for r in feed})
        records = await conn.fetch(SELECT_STREAMS, streams, shadow.types)
        pairs = await opened_pairs(conn, records)
        # Unqualified table names in the projections' SQL now mean the shadow tables; `events`
        # still resolves to public.events. LOCAL: reset at the end of this transaction.
        await conn.execute(f"SET LOCAL search_path = {SHADOW_SCHEMA}, public")
        for p in shadow.projections:
            relevant = [(r, e) for r, e in pairs if type(e) in p.handles]
            if relevant:
                refolded = Rows()
                p.fold_all(refolded, relevant)
                keys = {p.key_of(e)[0] for _, e in relevant}
                # Row counts follow along, so the swap need not count whole tables.
                before: int = await conn.fetchval(
                    f"SELECT count(*) FROM {p.table} WHERE {p.key} = ANY($1::bigint[])", list(keys)
                )
                await p.write(conn, refolded, delete_keys=keys)
                after = sum(map(len, refolded.groups.values()))
                shadow.report.rows[p.name] = shadow.report.rows.get(p.name, 0) + after - before
        await conn.execute("SET LOCAL search_path = public")
        return len(feed)
