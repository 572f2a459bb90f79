"""New leads projected by the server, with the rebuild's set-based SQL.

A 50,000-row upload appends 50,000 LeadInserted events. Folding them in Python, encoding
50,000 lead rows and their contacts and copying them back costs several seconds of the one core
the writer runs on, for rows that are a pure function of events the database already holds.
So the `leads` and `contacts` rows of new leads are computed from the just-appended events by
the statement that rebuilds them (`rebuild/set_based.py`), in the same transaction, one
statement for both tables; the Python fold applies everything else. For a few leads too (a
group of single-lead requests), whose events and keys one statement appends: the rows go in
that statement as more CTEs (`along_append`), with no round trip of their own, and no fold or
row encoding on the writer's one core. Both produce the same rows: every test
database is verified against a rebuild that folds in Python where the SQL path does not apply,
and tests/integration/test_fresh_inserts.py compares the two paths on the same leads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import SCHEMA_VERSION, LeadInserted
from lead_ledger.ledger.store import ALONG_FIRST_PARAMETER, Along
from lead_ledger.projections.base import Pair
from lead_ledger.projections.lead_rows_sql import (
    leads_and_contacts_ctes,
    write_leads_and_contacts_sql,
)

# From this many new leads in one write. The statement is prepared once per connection, so
# even one lead costs a single round trip, where the fold pays one per table.
SQL_FROM: Final = 1
# The projections the statement writes: it must write every view that handles LeadInserted.
WRITES: Final = frozenset({"leads", "contacts"})


def _final(source: str, at: str, times: str = "") -> str:
    """The `final` CTE of new leads: each event's own fields (`source`, a JSON array of
    LeadInserted events as written: one document to encode and send, not one per lead), version
    1, entered and modified `at` (row_times.entered of a LeadInserted: when recorded), which
    `times` (a FROM item) may provide."""
    return f"""final AS (
    SELECT (data->>'lead_id')::bigint AS lead_id,
           (data->>'account_id')::bigint AS account_id,
           (data->>'campaign_id')::bigint AS campaign_id,
           1 AS version,
           data->'dedupe_keys' AS dedupe_keys,
           data->'fields' AS f,
           {at} AS entry_at,
           {at} AS modified_at
    FROM jsonb_array_elements({source}::jsonb) AS e(data){times}
    OFFSET 0
)"""


# The events come as written ($1), not as stored: the stored ones hold their personal data
# sealed, which SQL cannot open.
APPLY_FRESH_LEADS: Final = write_leads_and_contacts_sql(
    f"WITH {_final('$1', '$2::timestamptz')}", "public"
)
# The same rows, written by the statement that appends the events (store.Along), at the time
# the events were recorded: none when no event was appended (a subject had a key after all).
ALONG_APPEND: Final = (
    _final(
        f"${ALONG_FIRST_PARAMETER}",
        "appended_at.recorded_at",
        "\n    CROSS JOIN (SELECT recorded_at FROM appended LIMIT 1) AS appended_at",
    )
    + ", "
    + leads_and_contacts_ctes("public")
)
# The statement reads expiry times written without an offset as UTC, as the rebuild does; on a
# connection in another time zone (not the package's pools: database.create_pool) the caller's
# setting is put back for the rest of its transaction.
USE_UTC: Final = "SELECT current_setting('TimeZone'), set_config('TimeZone', 'UTC', true)"
RESTORE_TIME_ZONE: Final = "SELECT set_config('TimeZone', $1, true)"
_JSON: Final = msgspec.json.Encoder()
UTC_NAMES: Final = frozenset({"UTC", "Etc/UTC"})


def _is_fresh_insert(pair: Pair) -> bool:
    recorded, event = pair
    return (
        isinstance(event, LeadInserted)
        and recorded.stream_version == 1
        and recorded.schema_version == SCHEMA_VERSION
    )


def split_fresh_inserts(pairs: Sequence[Pair]) -> tuple[list[Pair], Sequence[Pair]]:
    """The new leads the statement applies (none below SQL_FROM), and the events left."""
    fresh = [pair for pair in pairs if _is_fresh_insert(pair)]
    if len(fresh) < SQL_FROM:
        return [], pairs
    return fresh, [pair for pair in pairs if not _is_fresh_insert(pair)]


async def apply_fresh_inserts(conn: Connection, fresh: Sequence[Pair]) -> None:
    """Write the leads and contacts rows of the new leads (all appended by one statement, so
    recorded at one time)."""
    recorded_at = {recorded.recorded_at for recorded, _ in fresh}
    if len(recorded_at) != 1:
        raise ValueError("fresh inserts must come from one append")
    bodies = _JSON.encode([event for _, event in fresh])
    # The server reports TimeZone on every change, so this costs no round trip.
    if conn.get_settings().TimeZone in UTC_NAMES:
        await conn.fetchrow(APPLY_FRESH_LEADS, bodies, recorded_at.pop())
        return
    previous = await conn.fetchrow(USE_UTC)
    await conn.fetchrow(APPLY_FRESH_LEADS, bodies, recorded_at.pop())
    await conn.execute(RESTORE_TIME_ZONE, previous[0] if previous is not None else "UTC")


def along_append(conn: Connection, events: Sequence[LeadInserted]) -> Along | None:
    """The rows of these new leads, written by the statement that appends their events in one
    round trip (store.Along; registry.apply_inline is then told they are `projected`). None on a
    connection in another time zone than UTC, whose session APPLY_FRESH_LEADS must set first."""
    if not events or len(events) < SQL_FROM or conn.get_settings().TimeZone not in UTC_NAMES:
        return None
    return Along(ALONG_APPEND, (_JSON.encode(list(events)),))
