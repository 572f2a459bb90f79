"""The projection contract and the one code path that applies events, live or in a rebuild.

A projection owns one table whose rows are grouped by a bigint key naming the stream they come
from (a lead id or an account id). `fold` is pure and works on in-memory rows: live, the rows of
the touched keys are loaded first and written back after; in a rebuild, every row starts empty
in memory and all are copied out at the end. Same fold, same rows, so a rebuild reproduces the
live tables exactly. Writes are set-based: one SELECT, one DELETE and one COPY per projection
per batch, however many events the batch holds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Final

import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import RecordedEvent
from lead_ledger.ledger.events import DomainEvent

Row = dict[str, Any]
Pair = tuple[RecordedEvent, DomainEvent]

_JSON: Final = msgspec.json.Encoder()
SHADOW_SCHEMA: Final = "ledger_shadow"
# Up to this many rows go by a prepared INSERT (one round trip for a single-lead request);
# more go by binary COPY, whose extra round trips pay off only for larger batches.
SMALL_WRITE: Final = 16


class Rows:
    """A projection's rows for some keys, grouped by key, with the keys a fold changed."""

    __slots__ = ("groups", "touched")

    def __init__(self, groups: dict[int, list[Row]] | None = None) -> None:
        self.groups: dict[int, list[Row]] = groups if groups is not None else {}
        self.touched: set[int] = set()

    def get(self, key: int) -> Row | None:
        group = self.groups.get(key)
        return group[0] if group else None

    def group(self, key: int) -> list[Row]:
        return self.groups.get(key, [])

    def put(self, key: int, row: Row) -> None:
        self.groups[key] = [row]
        self.touched.add(key)

    def add(self, key: int, row: Row) -> None:
        """One more row in the key's group (configuration lists: agents, campaigns, ...)."""
        self.set_group(key, [*self.group(key), row])

    def set_group(self, key: int, rows: list[Row]) -> None:
        self.groups[key] = rows
        self.touched.add(key)

    def drop(self, key: int) -> None:
        self.groups.pop(key, None)
        self.touched.add(key)

    def all_rows(self, keys: Iterable[int] | None = None) -> Iterable[Row]:
        for key in self.groups if keys is None else keys:
            yield from self.groups.get(key, ())


class Projection(ABC):
    """One read model: its table, its key column, and how events fold into its rows."""

    name: ClassVar[str]
    table: ClassVar[str]
    key: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    jsonb_columns: ClassVar[frozenset[str]] = frozenset()
    handles: ClassVar[frozenset[type]]

    @abstractmethod
    def key_of(self, event: DomainEvent) -> tuple[int, bool]:
        """The key an event touches, and whether the event creates that key afresh."""

    @abstractmethod
    def fold(self, rows: Rows, recorded: RecordedEvent, event: DomainEvent) -> None:
        """Apply one event to the in-memory rows. Pure: no I/O, time from `recorded`."""

    # --- SQL, built once per class from its own constants (never from input) -----------------

    def select_sql(self) -> str:
        return (
            f"SELECT {', '.join(self.columns)} FROM {self.table} "
            f"WHERE {self.key} = ANY($1::bigint[])"
        )

    def insert_sql(self) -> str:
        values = ", ".join(f"${i}" for i in range(1, len(self.columns) + 1))
        return f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES ({values})"

    def delete_sql(self) -> str:
        return f"DELETE FROM {self.table} WHERE {self.key} = ANY($1::bigint[])"

    def to_record(self, row: Row) -> tuple[Any, ...]:
        return tuple(
            _JSON.encode(row[c]) if c in self.jsonb_columns else row[c] for c in self.columns
        )

    def from_record(self, record: Iterable[object]) -> Row:
        row: Row = dict(zip(self.columns, record, strict=True))
        for column in self.jsonb_columns:
            raw = row[column]
            if isinstance(raw, bytes):
                row[column] = msgspec.json.decode(raw)
        return row

    # --- live (inline) path ----------------------------------------------------------------

    async def apply_live(self, conn: Connection, pairs: Sequence[Pair]) -> None:
        relevant = [(r, e) for r, e in pairs if type(e) in self.handles]
        if not relevant:
            return
        to_load: set[int] = set()
        first_seen: set[int] = set()
        for _, event in relevant:
            key, fresh = self.key_of(event)
            if key not in first_seen:
                first_seen.add(key)
                if not fresh:
                    to_load.add(key)
        rows = Rows(await self.load(conn, to_load))
        for recorded, event in relevant:
            self.fold(rows, recorded, event)
        await self.write(conn, rows, delete_keys=to_load & rows.touched)

    async def load(self, conn: Connection, keys: set[int]) -> dict[int, list[Row]]:
        groups: dict[int, list[Row]] = {}
        if not keys:
            return groups
        for record in await conn.fetch(self.select_sql(), list(keys)):
            row = self.from_record(record)
            groups.setdefault(row[self.key], []).append(row)
        return groups

    async def write(self, conn: Connection, rows: Rows, *, delete_keys: set[int]) -> None:
        if delete_keys:
            await conn.execute(self.delete_sql(), list(delete_keys))
        await self.write_records(conn, [self.to_record(row) for row in rows.all_rows(rows.touched)])

    async def write_records(self, conn: Connection, records: Sequence[tuple[Any, ...]]) -> None:
        """New rows, as tuples in column order: COPY for many, a prepared INSERT for few."""
        if len(records) > SMALL_WRITE:
            await conn.copy_records_to_table(
                self.table, records=records, columns=list(self.columns)
            )
        elif records:
            await conn.executemany(self.insert_sql(), records)

    # --- rebuild path ----------------------------------------------------------------------

    def fold_all(self, rows: Rows, pairs: Iterable[Pair]) -> None:
        for recorded, event in pairs:
            if type(event) in self.handles:
                self.fold(rows, recorded, event)

    async def copy_all(self, conn: Connection, rows: Rows, *, schema: str) -> int:
        records = [self.to_record(row) for row in rows.all_rows()]
        if records:
            await conn.copy_records_to_table(
                self.table, schema_name=schema, records=records, columns=list(self.columns)
            )
        return len(records)
