"""The embedded server's bookkeeping, in process: forgetting dead users, finding the postmaster,
stopping it. A small Python process stands in for the postmaster: stopping sends it SIGINT,
as PostgreSQL's fast shutdown is asked for. (tests/e2e/test_cli_errors.py does it with a real
server.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from lead_ledger import cli
from lead_ledger.ledger import embedded
from lead_ledger.settings import Settings


@pytest.fixture
def pgdata(tmp_path: Path) -> Path:
    path = tmp_path / "data" / embedded.PGDATA
    path.mkdir(parents=True)
    return path


# Ends on SIGINT by a handler of its own, as the postmaster does: a process started from a
# non-interactive shell's background job inherits SIGINT ignored, and `sleep` would never end.
_POSTMASTER: Final = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGINT, lambda *_: sys.exit(0))\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.fixture
def stand_in() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that ends on SIGINT, as a postmaster does; its handler is in place."""
    process = subprocess.Popen(  # noqa: S603 - this interpreter, our own two lines
        [sys.executable, "-c", _POSTMASTER], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    yield process
    process.kill()
    process.wait()
    process.stdout.close()


def _dead_pid() -> int:
    done = subprocess.Popen(["true"])  # noqa: S607 - a process that is surely gone
    done.wait()
    return done.pid


def test_dead_users_are_forgotten_and_live_ones_kept(pgdata: Path) -> None:
    """Only pids of processes that still exist stay in the handle file."""
    handles = pgdata / embedded.HANDLES
    handles.write_text(json.dumps([_dead_pid(), os.getpid()]))
    assert embedded.forget_dead_handles(pgdata) == [os.getpid()]
    assert json.loads(handles.read_text()) == [os.getpid()]
    assert embedded.forget_dead_handles(pgdata.parent / "nowhere") == []


def test_the_postmaster_is_found_by_its_pid_file(
    pgdata: Path, stand_in: subprocess.Popen[bytes]
) -> None:
    """A pid file naming a live process: that pid; a dead one, or no file: None."""
    assert embedded.running_pid(pgdata) is None
    (pgdata / "postmaster.pid").write_text(f"{stand_in.pid}\n{pgdata}\n")
    assert embedded.running_pid(pgdata) == stand_in.pid
    (pgdata / "postmaster.pid").write_text(f"{_dead_pid()}\n")
    assert embedded.running_pid(pgdata) is None


def test_stop_refuses_while_others_use_it_unless_forced(
    pgdata: Path, stand_in: subprocess.Popen[bytes]
) -> None:
    """Another live user: InUseError naming it; --force stops the postmaster anyway and clears
    the handle file."""
    (pgdata / "postmaster.pid").write_text(f"{stand_in.pid}\n")
    user = subprocess.Popen(["sleep", "60"])  # noqa: S607 - another process using the server
    try:
        (pgdata / embedded.HANDLES).write_text(json.dumps([user.pid]))
        with pytest.raises(embedded.InUseError) as in_use:
            embedded.stop(pgdata.parent)
        assert in_use.value.pids == [user.pid]
        assert embedded.stop(pgdata.parent, force=True) == stand_in.pid
    finally:
        user.kill()
        user.wait()
    assert stand_in.wait(timeout=10) == 0  # ended by its SIGINT handler
    assert not (pgdata / embedded.HANDLES).exists()


def test_db_stop_reports_what_it_stopped(
    pgdata: Path, stand_in: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """The command's lines: in use (exit 1), then stopped (exit 0) with the pid."""
    (pgdata / "postmaster.pid").write_text(f"{stand_in.pid}\n")
    (pgdata / embedded.HANDLES).write_text(json.dumps([stand_in.pid]))
    settings = Settings(data_dir=pgdata.parent)
    assert cli._db_stop(settings, force=False) == 1
    assert f"is in use by process(es) {stand_in.pid}" in capsys.readouterr().err
    assert cli._db_stop(settings, force=True) == 0
    assert capsys.readouterr().out == (
        f"stopped the embedded server in {pgdata.parent} (pid {stand_in.pid})\n"
    )
