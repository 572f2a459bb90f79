"""The `lead-ledger` command as a user runs it: real processes, the embedded default database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from lead_ledger.ledger.database import connect
from lead_ledger.ledger.envelope import NO_STREAM, NewEvent, StreamAppend
from lead_ledger.ledger.migrate import shipped_migrations
from lead_ledger.ledger.roles import APP_ROLE
from lead_ledger.ledger.store import append_events
from tests.conftest import role_url

CLI = str(Path(sys.executable).parent / "lead-ledger")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(extra)
    env["LEDGER_LOG_FORMAT"] = "json"
    return env


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 90) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited early with {process.returncode}")
        try:
            return _get(url)[0]
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {seconds}s")


def _serve(data_dir: Path, port: int, output: int) -> subprocess.Popen[bytes]:
    """`lead-ledger serve` on the embedded default in `data_dir`; stdout and stderr to `output`."""
    return subprocess.Popen(  # noqa: S603 - our own console script
        [CLI, "serve", "--port", str(port)],
        env=_env(LEDGER_DATA_DIR=str(data_dir)),
        stdout=output,
        stderr=output,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    yield path
    # Whatever a test left running in this data dir must not outlive it.
    pid_file = path / "pgdata" / "postmaster.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text().split()[0])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


async def _roles_of_other_sessions(url: str) -> tuple[bool, set[str]]:
    """Whether `url`'s role is a superuser, and the roles of the other sessions on its database."""
    conn = await connect(url)
    try:
        superuser = await conn.fetchval(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        )
        roles = await conn.fetch(
            "SELECT DISTINCT usename FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        return superuser, {row["usename"] for row in roles}
    finally:
        await conn.close()


def test_serve_on_the_embedded_default_answers_and_stops_cleanly(data_dir: Path) -> None:
    """`lead-ledger serve` with no database configured: healthz and readyz 200, clean stop; it
    and `db-url` log in as the non-superuser service role, not as the server's superuser."""
    port = _free_port()
    process = _serve(data_dir, port, subprocess.PIPE)
    try:
        assert _wait_for(f"http://127.0.0.1:{port}/healthz", process) == 200
        status, body = _get(f"http://127.0.0.1:{port}/readyz")
        assert status == 200
        assert msgspec.json.decode(body) == {"status": "ok", "database": "ok"}

        # A second process on the same data dir joins the running server instead of a new one.
        joined = subprocess.run(  # noqa: S603
            [CLI, "db-url"],
            env=_env(LEDGER_DATA_DIR=str(data_dir)),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert str(data_dir / "pgdata") in joined.stdout
        assert joined.stdout.strip().endswith(f"host={data_dir / 'pgdata'}")
        assert _get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        superuser, roles = asyncio.run(_roles_of_other_sessions(joined.stdout.strip()))
        assert joined.stdout.startswith("postgresql://lead_ledger_app@")
        assert not superuser
        assert roles == {"lead_ledger_app"}  # the serve's pool and listeners
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr.decode()
    lines = [msgspec.json.decode(line) for line in stderr.splitlines() if line.startswith(b"{")]
    requests = [line for line in lines if line.get("event") == "request"]
    assert {r["route"] for r in requests} >= {"/healthz", "/readyz"}
    assert all("request_id" in r and "duration_ms" in r for r in requests)


def _key_workers_of(pid: int) -> set[int]:
    """Live phone key worker processes whose parent is `pid` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # The fields after the command's closing parenthesis: state, then the parent's pid.
            state, parent = stat.rsplit(")", 1)[1].split()[:2]
            cmdline = (entry / "cmdline").read_bytes()
            if int(parent) == pid and state != "Z" and b"key_workers" in cmdline:
                found.add(int(entry.name))
    return found


def _gone(pids: set[int], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = {pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)}
        if not alive:
            return True
        time.sleep(0.1)
    return False


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.skipif(
    not Path("/proc/self/stat").exists() or (os.cpu_count() or 1) < 2,
    reason="reads /proc; one core starts no key workers",
)
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_serve_starts_key_workers_that_end_with_it(data_dir: Path, stop: signal.Signals) -> None:
    """`serve` starts its phone key workers at once; they exit when it stops, even by SIGKILL."""
    port = _free_port()
    process = _serve(data_dir, port, subprocess.DEVNULL)
    try:
        assert _wait_for(f"http://127.0.0.1:{port}/healthz", process) == 200
        workers = _key_workers_of(process.pid)
        assert len(workers) == min(os.cpu_count() or 1, 8)
    finally:
        process.send_signal(stop)
        process.wait(timeout=60)
    assert _gone(workers)


def _body(i: int) -> bytes:
    return msgspec.json.encode({"i": i})


async def _seed(url: str, count: int) -> None:
    conn = await connect(url)
    try:
        async with conn.transaction():
            await append_events(
                conn,
                [
                    StreamAppend(
                        stream_id=f"lead-{i}",
                        expected_version=NO_STREAM,
                        events=[NewEvent(event_id=uuid.uuid4(), type="noted", data=_body(i))],
                    )
                    for i in range(count)
                ],
            )
    finally:
        await conn.close()


async def test_migrate_and_events_tail_against_a_configured_database(
    database_factory: Callable[..., Awaitable[str]],
) -> None:
    """`migrate` applies pending files once; `events tail` prints JSON lines after a position."""
    url = await database_factory(migrated=False)
    env = _env(LEDGER_DATABASE_URL=url)

    async def run(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            CLI, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, err.decode()
        return out.decode()

    names = ", ".join(m.name for m in shipped_migrations())
    assert (
        await run("migrate")
    ).strip() == f"applied {len(shipped_migrations())} migration(s): {names}"
    assert (await run("migrate")).strip() == "applied 0 migration(s)"
    await _seed(url, 3)
    lines = [msgspec.json.decode(line) for line in (await run("events", "tail")).splitlines()]
    assert [line["data"] for line in lines] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert {line["stream_id"] for line in lines} == {"lead-0", "lead-1", "lead-2"}
    after_first = await run("events", "tail", "--after", str(lines[0]["position"]))
    assert [msgspec.json.decode(line)["data"] for line in after_first.splitlines()] == [
        {"i": 1},
        {"i": 2},
    ]
    limited = await run("events", "tail", "--follow", "--limit", "2")
    assert len(limited.splitlines()) == 2
    assert (await run("db-url")).strip() == url


async def test_two_urls_migrate_as_the_owner_and_serve_as_the_service(
    database_factory: Callable[..., Awaitable[str]],
) -> None:
    """With only the service's URL, `migrate` on an empty database refuses, naming the fix; with
    the owner's as LEDGER_MIGRATION_DATABASE_URL it migrates, and the service's role can then
    append and tail while `db-url` prints the service's URL."""
    owner = await database_factory(migrated=False)
    service = role_url(owner, APP_ROLE)

    async def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            CLI, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    alone = _env(LEDGER_DATABASE_URL=service)
    code, _, err = await run(alone, "migrate")
    assert code == 1
    assert "LEDGER_MIGRATION_DATABASE_URL" in err
    both = _env(LEDGER_DATABASE_URL=service, LEDGER_MIGRATION_DATABASE_URL=owner)
    code, out, err = await run(both, "migrate")
    assert code == 0, err
    assert out.startswith(f"applied {len(shipped_migrations())} migration(s)")
    await _seed(service, 2)
    code, out, err = await run(alone, "events", "tail")
    assert code == 0, err
    assert len(out.splitlines()) == 2
    assert "service_role_privileged" not in err
    assert (await run(both, "db-url"))[1].strip() == service


def test_invalid_setting_is_a_clear_error() -> None:
    """A bad LEDGER_* value names the setting and exits 2, without a traceback."""
    done = subprocess.run(  # noqa: S603
        [CLI, "migrate"],
        env=_env(LEDGER_DB_POOL_MAX="many"),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert "LEDGER_DB_POOL_MAX='many' is not valid: a whole number >= 1" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr
