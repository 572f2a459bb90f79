"""The upload parser's worker process: a parse that fails takes only the worker with it."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from lead_ledger.service.file_parser import FileParser, Parsed, ParseRequest
from lead_ledger.service.ozonetel_file import UploadRefusal
from tests import workbooks

GIB = 1024**3


def request(data: bytes) -> ParseRequest:
    return ParseRequest(
        data=data, campaign_name="sales", assignment="none", agent_ids=[], skills=[]
    )


async def test_parses_in_a_worker_started_on_first_use() -> None:
    """No worker until the first file; then the rows come back as the job's payload."""
    with FileParser(memory_bytes=GIB, timeout_seconds=60) as parser:
        assert parser.pid() is None
        result = await parser.parse(request(workbooks.phones(3)))
        assert isinstance(result, Parsed)
        assert result.received == 3
        assert parser.pid() not in (None, os.getpid())


async def test_a_file_over_the_memory_limit_is_refused_and_the_next_parses() -> None:
    """50,000 rows in a 64 MiB address space fail in the worker: "Data limit exceeded"."""
    with FileParser(memory_bytes=64 * 1024 * 1024, timeout_seconds=60) as parser:
        big = await parser.parse(request(workbooks.phones(50_000)))
        assert big == UploadRefusal("Data limit exceeded")
        small = await parser.parse(request(workbooks.phones(3)))
        assert isinstance(small, Parsed)


async def test_a_dead_worker_is_replaced() -> None:
    """A worker killed between files is started again for the next one."""
    with FileParser(memory_bytes=GIB, timeout_seconds=60) as parser:
        assert isinstance(await parser.parse(request(workbooks.phones(3))), Parsed)
        first = parser.pid()
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await _until_dead(first)
        assert isinstance(await parser.parse(request(workbooks.phones(3))), Parsed)
        assert parser.pid() not in (None, first)


async def test_a_parse_past_the_timeout_is_refused() -> None:
    """A worker that overruns the timeout is killed: "Data limit exceeded", no worker left."""
    with FileParser(memory_bytes=GIB, timeout_seconds=0.01) as parser:
        result = await parser.parse(request(workbooks.phones(50_000)))
        assert result == UploadRefusal("Data limit exceeded")
        assert parser.pid() is None


async def test_closed_parser_ends_its_worker() -> None:
    """Closing the parser ends its worker process."""
    parser = FileParser(memory_bytes=GIB, timeout_seconds=60)
    await parser.parse(request(workbooks.phones(3)))
    pid = parser.pid()
    assert pid is not None
    parser.close()
    assert parser.pid() is None
    assert not _alive(pid)


async def _until_dead(pid: int) -> None:
    """Until the killed process has exited (a zombie, still its parent's to reap)."""
    for _ in range(200):
        if _state(pid) in ("Z", ""):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{pid} did not exit")


def _state(pid: int) -> str:
    path = Path(f"/proc/{pid}/stat")
    return path.read_text().rsplit(")", 1)[1].split()[0] if path.exists() else ""


def _alive(pid: int) -> bool:
    """Whether the process exists (reaped processes do not)."""
    return Path(f"/proc/{pid}").exists()
