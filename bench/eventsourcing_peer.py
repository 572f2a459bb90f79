"""The eventsourcing library as a peer baseline for bench/bulk_upload.py: its PostgreSQL
recorder saving one-event aggregates (a lead's insert), in batches of `batch` aggregates per
`Application.save` (one transaction each), with no projection and no check. What a general
Python event store costs for the same number of events, measured in the same run.

Needs the bench extra (`pip install -e '.[bench]'`: eventsourcing with psycopg).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


def available() -> bool:
    try:
        import eventsourcing.postgres  # noqa: F401, PLC0415 - optional, the bench extra
    except ImportError:
        return False
    return True


def persistence_env(database_url: str) -> dict[str, str]:
    """The library's settings for the database a URL names (host may be a socket directory)."""
    parts = urlsplit(database_url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": str(parts.port or query.get("port", ["5432"])[0]),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "CREATE_TABLE": "y",
    }


@functools.cache
def _peer_lead() -> type[Any]:
    """The peer's aggregate class, made once: the library registers each class's topic, and
    a second class of the same name is refused."""
    from eventsourcing.domain import Aggregate, event  # noqa: PLC0415 - the bench extra

    class PeerLead(Aggregate):
        @event("Inserted")
        def __init__(self, phone: str, name: str, agent: str, skill: str) -> None:
            self.phone, self.name, self.agent, self.skill = phone, name, agent, skill

    return PeerLead


def save_seconds(database_url: str, rows: Sequence[Sequence[str]], batch: int = 1000) -> float:
    """Seconds to save one aggregate per row, `batch` per transaction (tables made first)."""
    from eventsourcing.application import Application  # noqa: PLC0415 - the bench extra

    lead = _peer_lead()
    # The library names its table after the application's class: a class per call, so that a
    # round never appends to another round's table.
    peer = type(f"Peer{uuid.uuid4().hex[:8]}", (Application,), {})
    app: Any = peer(env=persistence_env(database_url))
    try:
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            app.save(*(lead(*row[:4]) for row in rows[start : start + batch]))
        return time.perf_counter() - started
    finally:
        app.close()
