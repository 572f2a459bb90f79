"""The event store: append to streams, read a stream, read the global feed.

Every function takes an asyncpg connection so that callers decide the transaction: an append,
its campaign locks and the inline projections it feeds all commit or roll back together.
SQL is named after what it does and lives in module constants with `$n` parameters.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from lead_ledger.ledger import key_store
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import (
    ANY_VERSION,
    METADATA_ENCODER,
    NO_STREAM,
    RecordedEvent,
    StreamAppend,
)
from lead_ledger.ledger.errors import ConcurrencyError, LedgerError
from lead_ledger.ledger.key_store import KeysExistedError, NewKeys

_COLUMNS: Final = (
    "position, event_id, stream_id, stream_version, type, schema_version, data, metadata,"
    " recorded_at, transaction_id"
)

SELECT_STREAM_VERSIONS: Final = """
SELECT stream_id, max(stream_version) AS version
FROM events
WHERE stream_id = ANY($1::text[])
GROUP BY stream_id
"""

# One statement for any number of events: the arrays travel in asyncpg's binary format and
# unnest keeps their order, so RETURNING pairs each row with its event_id.
INSERT_EVENTS: Final = """
INSERT INTO events (event_id, stream_id, stream_version, account_id, type, schema_version,
                    data, metadata)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bigint[], $5::text[], $6::int2[],
                     $7::jsonb[], $8::jsonb[])
RETURNING event_id, position, recorded_at, transaction_id
"""

# INSERT_EVENTS ($1-$8) with the keys of the events' new subjects ($9-$11, as
# key_store.INSERT_KEYS stores them): the events go in only if every key did (none of those
# subjects had one), so a subject's events are never sealed with a key that is not its own.
_KEYS_AS_9_TO_11: Final = (
    key_store.INSERT_KEYS.replace("$1", "$9").replace("$2", "$10").replace("$3", "$11")
)
_EVENTS_IF_ALL_MADE: Final = INSERT_EVENTS.replace(
    "\nRETURNING", "\nWHERE (SELECT count(*) FROM made) = cardinality($9::text[])\nRETURNING"
)
if _EVENTS_IF_ALL_MADE == INSERT_EVENTS:
    raise RuntimeError("INSERT_EVENTS changed: update _EVENTS_IF_ALL_MADE")
INSERT_KEYS_AND_EVENTS: Final = f"WITH made AS ({_KEYS_AS_9_TO_11}){_EVENTS_IF_ALL_MADE}"
# The unique constraints of `events`: a violation of one is a clash of streams (or a retry).
_EVENT_CONSTRAINTS: Final = frozenset(
    {"events_pkey", "events_event_id_key", "events_stream_version_key"}
)
# The first parameter an `Along`'s statements may take ($1-$11 are the keys' and the events').
ALONG_FIRST_PARAMETER: Final = 12


@dataclass(frozen=True, slots=True)
class Along:
    """More writes for the statement that appends events with their new subjects' keys, in its
    round trip: `ctes` are WITH items (`name AS (...)`, comma-separated) that may read
    `appended`, the events as inserted (event_id, position, recorded_at, transaction_id), which
    is empty when a subject had a key after all, and take their parameters, `args`, from
    $ALONG_FIRST_PARAMETER on. The projections use it to write the rows of new leads."""

    ctes: str
    args: tuple[object, ...]


@functools.cache
def _insert_keys_and_events_along(ctes: str) -> str:
    return (
        f"WITH made AS ({_KEYS_AS_9_TO_11}), appended AS ({_EVENTS_IF_ALL_MADE}), {ctes}\n"
        "SELECT * FROM appended"
    )


SELECT_EVENTS_BY_ID: Final = f"""
SELECT {_COLUMNS} FROM events WHERE event_id = ANY($1::uuid[]) ORDER BY position
"""

# A stream as it stood at a time is the prefix of its versions before the first one recorded
# after that time, not every event recorded by then: recorded_at is its transaction's start,
# and a transaction that began first may have waited for the stream's lock and written a later
# version (v3 recorded before v2). `cut` is that first version (NULL: none after the time).
_CUT: Final = (
    "min(stream_version) FILTER (WHERE recorded_at > {time}) OVER (PARTITION BY stream_id)"
)
# Without a time (every write's read of a stream) the plain queries serve.
SELECT_STREAM: Final = f"""
SELECT {_COLUMNS}
FROM events
WHERE stream_id = $1
  AND stream_version > $2
  AND ($3::int IS NULL OR stream_version <= $3)
  AND ($4::bigint IS NULL OR position <= $4)
ORDER BY stream_version
"""
SELECT_STREAM_AS_OF: Final = f"""
SELECT {_COLUMNS} FROM (
    SELECT {_COLUMNS}, {_CUT.format(time="$5")} AS cut
    FROM events
    WHERE stream_id = $1
      AND stream_version > $2
      AND ($3::int IS NULL OR stream_version <= $3)
      AND ($4::bigint IS NULL OR position <= $4)
) stream
WHERE cut IS NULL OR stream_version < cut
ORDER BY stream_version
"""

# The visibility fence: only transactions older than the oldest one still running are read, so
# an event that commits late (lower position, later commit) is never passed over. The cursor is
# a position; its transaction id is looked up, so (transaction_id, position) order is resumed
# exactly where the reader left it.
SELECT_FEED: Final = f"""
SELECT {_COLUMNS}
FROM events
WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
  AND (transaction_id, position) > (
        COALESCE((SELECT transaction_id FROM events WHERE position = $1),
                 -- a cursor that names no event (past the head): resume after the last before it
                 (SELECT transaction_id FROM events WHERE position < $1
                  ORDER BY position DESC LIMIT 1),
                 '0'::xid8), $1)
  AND ($3::bigint IS NULL OR account_id = $3)
ORDER BY transaction_id, position
LIMIT $2
"""

SELECT_STREAMS: Final = f"""
SELECT {_COLUMNS}
FROM events
WHERE stream_id = ANY($1::text[])
ORDER BY stream_id, stream_version
"""
SELECT_STREAMS_AS_OF: Final = f"""
SELECT {_COLUMNS} FROM (
    SELECT {_COLUMNS}, {_CUT.format(time="$2")} AS cut
    FROM events
    WHERE stream_id = ANY($1::text[])
) streams
WHERE cut IS NULL OR stream_version < cut
ORDER BY stream_id, stream_version
"""

SELECT_HEAD_POSITION: Final = "SELECT coalesce(max(position), 0) FROM events"
SAVEPOINT: Final = "SAVEPOINT ledger_append"
ROLLBACK_TO_SAVEPOINT: Final = "ROLLBACK TO SAVEPOINT ledger_append"
RELEASE_SAVEPOINT: Final = "RELEASE SAVEPOINT ledger_append"


class DuplicateEventError(LedgerError):
    """Some, but not all, of an append's event ids are already stored: not a clean retry."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The recorded events, and whether they were already stored (an idempotent retry)."""

    events: list[RecordedEvent]
    already_stored: bool = False


async def append_events(
    conn: Connection,
    appends: Sequence[StreamAppend],
    *,
    detect_retries: bool = True,
    new_keys: NewKeys | None = None,
    along: Along | None = None,
) -> AppendResult:
    """Append events to one or more streams in one statement (INSERT, or COPY when large).

    Raises ConcurrencyError when a stream is not at its expected version. Appending events whose
    ids are all stored already returns the stored events (`already_stored`), so a retried
    request records nothing twice. Callers whose event ids are fresh random ones cannot be
    retrying and pass `detect_retries=False`, which saves the savepoint's two round trips; a
    clash then aborts their transaction, as any error would.

    `new_keys` (with fresh event ids only): keys made for subjects that should have none, which
    the events are sealed with; stored by the INSERT itself (one round trip for both), or just
    before a COPY. If any of those subjects had a key, no event is appended and
    KeysExistedError is raised, with the caller's transaction still usable: the keys that were
    new are kept, and the caller seals again with the stored ones.

    `along` (with `new_keys`, for appends that `one_statement` writes): more writes that go in
    the same statement, and only if the events do.
    """
    if new_keys is not None and detect_retries:
        raise ValueError("new_keys are for appends of fresh event ids (detect_retries=False)")
    appends = [a for a in appends if a.events]
    if along is not None and (new_keys is None or not one_statement(appends)):
        raise ValueError("along: for appends with new_keys that one statement writes")
    if not appends:
        return AppendResult([])
    rows = _rows_of(appends, await _next_versions(conn, appends))
    write = await _writer(conn, rows, new_keys, along)
    try:
        if not detect_retries:
            return AppendResult(await write(conn, rows))
        # A savepoint (or a transaction, outside one) so a clash leaves the caller's
        # transaction usable for the idempotency lookup below. Plain SAVEPOINT statements,
        # since callers may have begun their transaction by hand (service write_transaction).
        if not conn.is_in_transaction():
            async with conn.transaction():
                recorded = await write(conn, rows)
        else:
            await conn.execute(SAVEPOINT)
            try:
                recorded = await write(conn, rows)
            except BaseException:
                await conn.execute(ROLLBACK_TO_SAVEPOINT)
                raise
            await conn.execute(RELEASE_SAVEPOINT)
    except asyncpg.UniqueViolationError as error:
        if detect_retries and error.constraint_name == "events_event_id_key":
            return await _stored_retry(conn, rows.event_ids)
        if error.constraint_name in _EVENT_CONSTRAINTS:
            raise _clash(appends) from error
        raise  # another table's (an `along` write's): not the streams'
    return AppendResult(recorded)


# Appends of at least this many events go by binary COPY: the INSERT's parameter arrays are
# encoded, sent and its RETURNING rows decoded in series with the server, while COPY streams
# rows as they are built. Below it, COPY's extra round trip costs more than it saves.
COPY_THRESHOLD: Final = 256


def one_statement(appends: Sequence[StreamAppend]) -> bool:
    """Whether these appends' events go in by one INSERT (else by COPY)."""
    return sum(len(append.events) for append in appends) < COPY_THRESHOLD


# Positions are drawn before the COPY so the client knows them without RETURNING. Identity
# values supplied by COPY are used as given; recorded_at and transaction_id still come from
# the column defaults, which equal now() and pg_current_xact_id() of this same transaction.
# The sequence is looked up once (an InitPlan): as nextval's argument the lookup and the
# text-to-regclass cast ran for every position, 8x the cost of the draws (50,000: ~97 ms
# against ~12 ms on the server, PostgreSQL 15).
DRAW_POSITIONS: Final = """
SELECT now() AS recorded_at,
       pg_current_xact_id() AS transaction_id,
       array(SELECT nextval((SELECT pg_get_serial_sequence('events', 'position')::regclass))
             FROM generate_series(1, $1) ORDER BY 1) AS positions
"""
COPY_COLUMNS: Final = [
    "position",
    "event_id",
    "stream_id",
    "stream_version",
    "account_id",
    "type",
    "schema_version",
    "data",
    "metadata",
]


@dataclass(frozen=True, slots=True)
class _Rows:
    """An append flattened into columns, in order."""

    event_ids: list[uuid.UUID]
    stream_ids: list[str]
    versions: list[int]
    accounts: list[int | None]
    types: list[str]
    schema_versions: list[int]
    bodies: list[bytes]
    metadatas: list[bytes]

    def columns(self) -> tuple[list[Any], ...]:
        """INSERT_EVENTS's parameters $1-$8, in order."""
        return (
            self.event_ids,
            self.stream_ids,
            self.versions,
            self.accounts,
            self.types,
            self.schema_versions,
            self.bodies,
            self.metadatas,
        )

    def recorded(
        self, i: int, position: int, recorded_at: datetime, transaction_id: int
    ) -> RecordedEvent:
        return RecordedEvent(
            position=position,
            event_id=self.event_ids[i],
            stream_id=self.stream_ids[i],
            stream_version=self.versions[i],
            type=self.types[i],
            schema_version=self.schema_versions[i],
            data=self.bodies[i],
            metadata=self.metadatas[i],
            recorded_at=recorded_at,
            transaction_id=transaction_id,
        )


async def _insert_events(conn: Connection, rows: _Rows) -> list[RecordedEvent]:
    returned = await conn.fetch(INSERT_EVENTS, *rows.columns())
    return _recorded_rows(rows, returned)


def _recorded_rows(rows: _Rows, returned: Sequence[asyncpg.Record]) -> list[RecordedEvent]:
    by_id = {row["event_id"]: row for row in returned}
    recorded = []
    for i, event_id in enumerate(rows.event_ids):
        row = by_id[event_id]
        recorded.append(
            rows.recorded(i, row["position"], row["recorded_at"], row["transaction_id"])
        )
    return recorded


def _rows_of(appends: Sequence[StreamAppend], next_version: dict[str, int]) -> _Rows:
    """The appends' events as columns, each numbered from its stream's next version."""

    event_ids: list[uuid.UUID] = []
    stream_ids: list[str] = []
    versions: list[int] = []
    accounts: list[int | None] = []
    types: list[str] = []
    schema_versions: list[int] = []
    bodies: list[bytes] = []
    metadatas: list[bytes] = []
    for append in appends:
        metadata = METADATA_ENCODER.encode(append.metadata)
        version = next_version[append.stream_id]
        for event in append.events:
            event_ids.append(event.event_id)
            stream_ids.append(append.stream_id)
            versions.append(version)
            accounts.append(append.account_id)
            types.append(event.type)
            schema_versions.append(event.schema_version)
            bodies.append(event.data)
            metadatas.append(metadata)
            version += 1
        next_version[append.stream_id] = version

    return _Rows(
        event_ids, stream_ids, versions, accounts, types, schema_versions, bodies, metadatas
    )


_Write = Callable[[Connection, "_Rows"], Awaitable[list[RecordedEvent]]]


async def _writer(
    conn: Connection, rows: _Rows, new_keys: NewKeys | None, along: Along | None = None
) -> _Write:
    """How these rows are written: by INSERT, or COPY when many; with new keys, stored by the
    INSERT itself (with `along`'s writes), or before the COPY."""
    if len(rows.event_ids) >= COPY_THRESHOLD:
        if new_keys is not None:
            await _store_keys(conn, new_keys)
        return _copy_events
    if new_keys is None:
        return _insert_events
    keys = new_keys

    async def insert_with_keys(conn: Connection, rows: _Rows) -> list[RecordedEvent]:
        return await _insert_keys_and_events(conn, rows, keys, along)

    return insert_with_keys


async def _insert_keys_and_events(
    conn: Connection, rows: _Rows, keys: NewKeys, along: Along | None
) -> list[RecordedEvent]:
    statement = (
        INSERT_KEYS_AND_EVENTS if along is None else _insert_keys_and_events_along(along.ctes)
    )
    more = () if along is None else along.args
    returned = await conn.fetch(statement, *rows.columns(), *keys.columns(), *more)
    if not returned:
        raise KeysExistedError
    return _recorded_rows(rows, returned)


async def _store_keys(conn: Connection, keys: NewKeys) -> None:
    for account_id, wrapped in keys.by_account.items():
        try:
            await key_store.store_new_keys(conn, account_id, wrapped)
        except (key_store.KeyConflictError, key_store.SubjectErasedError):
            raise KeysExistedError from None


async def _copy_events(conn: Connection, rows: _Rows) -> list[RecordedEvent]:
    header = await conn.fetchrow(DRAW_POSITIONS, len(rows.event_ids))
    assert header is not None  # noqa: S101 - a SELECT without FROM returns one row
    positions: list[int] = header["positions"]
    recorded_at: datetime = header["recorded_at"]
    transaction_id: int = header["transaction_id"]
    recorded: list[RecordedEvent] = []

    def records() -> Iterator[tuple[object, ...]]:
        # A generator: each row is built while COPY streams the previous ones to the server.
        for i, position in enumerate(positions):
            recorded.append(rows.recorded(i, position, recorded_at, transaction_id))
            yield (
                position,
                rows.event_ids[i],
                rows.stream_ids[i],
                rows.versions[i],
                rows.accounts[i],
                rows.types[i],
                rows.schema_versions[i],
                rows.bodies[i],
                rows.metadatas[i],
            )

    await conn.copy_records_to_table("events", records=records(), columns=COPY_COLUMNS)
    return recorded


async def _next_versions(conn: Connection, appends: Sequence[StreamAppend]) -> dict[str, int]:
    """The first version to write per stream, checking expectations that need a read.

    New streams (NO_STREAM) need no read: the unique (stream_id, stream_version) constraint
    rejects them if the stream exists. Streams expected at a version are read once, all in one
    query, so a writer that claims a version the stream never reached is refused too.
    """
    seen: set[str] = set()
    to_read: list[str] = []
    for append in appends:
        if append.stream_id in seen:
            raise ValueError(f"stream {append.stream_id!r} appears twice in one append")
        seen.add(append.stream_id)
        if append.expected_version != NO_STREAM:
            to_read.append(append.stream_id)
    current: dict[str, int] = {}
    if to_read:
        rows = await conn.fetch(SELECT_STREAM_VERSIONS, to_read)
        current = {row["stream_id"]: row["version"] for row in rows}
    first: dict[str, int] = {}
    for append in appends:
        actual = current.get(append.stream_id, 0)
        if append.expected_version == ANY_VERSION:
            first[append.stream_id] = actual + 1
            continue
        if append.expected_version not in (NO_STREAM, actual):
            raise ConcurrencyError(append.stream_id, append.expected_version, actual)
        first[append.stream_id] = append.expected_version + 1
    return first


def _clash(appends: Sequence[StreamAppend]) -> ConcurrencyError:
    if len(appends) == 1:
        return ConcurrencyError(appends[0].stream_id, appends[0].expected_version, None)
    names = ", ".join(a.stream_id for a in appends[:5])
    return ConcurrencyError(f"one of {names}", appends[0].expected_version, None)


async def _stored_retry(conn: Connection, event_ids: list[uuid.UUID]) -> AppendResult:
    rows = await conn.fetch(SELECT_EVENTS_BY_ID, event_ids)
    if len(rows) != len(event_ids):
        raise DuplicateEventError(
            f"{len(rows)} of {len(event_ids)} event ids are already stored; "
            "a retry must resend exactly the events of the original append"
        )
    stored = {row["event_id"]: _recorded(row) for row in rows}
    return AppendResult([stored[i] for i in event_ids], already_stored=True)


async def read_stream(
    conn: Connection,
    stream_id: str,
    *,
    after_version: int = 0,
    up_to_version: int | None = None,
    up_to_position: int | None = None,
    up_to_time: datetime | None = None,
) -> list[RecordedEvent]:
    """A stream's events in version order, optionally cut at a version, position or time."""
    if up_to_time is None:
        rows = await conn.fetch(
            SELECT_STREAM, stream_id, after_version, up_to_version, up_to_position
        )
    else:
        rows = await conn.fetch(
            SELECT_STREAM_AS_OF,
            stream_id,
            after_version,
            up_to_version,
            up_to_position,
            up_to_time,
        )
    return [_recorded(row) for row in rows]


async def read_streams(
    conn: Connection, stream_ids: Sequence[str], *, up_to_time: datetime | None = None
) -> dict[str, list[RecordedEvent]]:
    """Several streams in one query (archive requests load up to 500 leads at once), whole or
    as they stood at `up_to_time` (an export as of a time)."""
    streams: dict[str, list[RecordedEvent]] = {}
    if up_to_time is None:
        rows = await conn.fetch(SELECT_STREAMS, list(stream_ids))
    else:
        rows = await conn.fetch(SELECT_STREAMS_AS_OF, list(stream_ids), up_to_time)
    for row in rows:
        streams.setdefault(row["stream_id"], []).append(_recorded(row))
    return streams


async def read_feed(
    conn: Connection, *, after: int = 0, limit: int = 1000, account_id: int | None = None
) -> list[RecordedEvent]:
    """The next committed events of the global feed after the event at position `after`.

    Safe to follow: an event is returned only once every transaction that could still commit
    before it in feed order has finished, so resuming from the last position seen never skips
    one. Order is (transaction_id, position), which is commit-safe, not strictly by position.
    """
    rows = await conn.fetch(SELECT_FEED, after, limit, account_id)
    return [_recorded(row) for row in rows]


async def head_position(conn: Connection) -> int:
    """The highest position stored (0 when the log is empty)."""
    value: int = await conn.fetchval(SELECT_HEAD_POSITION)
    return value


def _recorded(row: asyncpg.Record) -> RecordedEvent:
    return RecordedEvent(
        position=row["position"],
        event_id=row["event_id"],
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        type=row["type"],
        schema_version=row["schema_version"],
        data=row["data"],
        metadata=row["metadata"],
        recorded_at=row["recorded_at"],
        transaction_id=row["transaction_id"],
    )
