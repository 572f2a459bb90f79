"""Uploaded files are parsed in a worker process with a memory and CPU limit, not in the server.

The bounds (service/workbook_bounds.py) refuse the files known to blow up a reader; this is for
the ones nobody knows yet. A reader that asks for more memory than the limit fails in the
worker (calamine aborts the process, Python raises MemoryError), one that spins is ended by its
CPU limit, one that hangs by the timeout; the upload is refused with the vendor's "Data limit
exceeded", the worker is replaced on the next upload, and the server never notices.

One worker, started by the first upload (startup pays nothing), parses one file at a time;
whoever creates a `FileParser` closes it (the app in its cleanup context). A plain subprocess
speaking length-prefixed msgpack on its pipes, for the reasons service/key_workers.py gives:
multiprocessing's spawn and forkserver re-import the parent's main module, and fork is unsafe
in a process with threads. The worker sets its own limits, first thing, from its arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import resource
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Final, Self

import msgspec
import structlog

from lead_ledger.ledger.events import Assignment
from lead_ledger.service.ozonetel_file import (
    DATA_LIMIT,
    UploadPayload,
    UploadRefusal,
    parse_upload,
)

log = structlog.get_logger(__name__)

_LENGTH_BYTES: Final = 4


class ParseRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A file and what its validation needs (`parse_upload`'s arguments)."""

    data: bytes
    campaign_name: str
    assignment: Assignment
    agent_ids: list[str]
    skills: list[str]


class Parsed(msgspec.Struct, frozen=True, kw_only=True):
    """An accepted file: its row count and the job's payload (`UploadPayload`, JSON)."""

    received: int
    payload: bytes


class _Answer(msgspec.Struct, frozen=True, kw_only=True):
    refusal: str | None = None
    parsed: Parsed | None = None


_encode: Final = msgspec.msgpack.Encoder().encode
_decode_request: Final = msgspec.msgpack.Decoder(ParseRequest).decode
_decode_answer: Final = msgspec.msgpack.Decoder(_Answer).decode


def parse_here(request: ParseRequest) -> Parsed | UploadRefusal:
    """Validate the file and encode its rows as the job's payload, in this process."""
    result = parse_upload(
        request.data,
        campaign_name=request.campaign_name,
        assignment=request.assignment,
        agent_ids=set(request.agent_ids),
        skills=set(request.skills),
    )
    if isinstance(result, UploadRefusal):
        return result
    payload = msgspec.json.encode(UploadPayload(rows=result.rows))
    return Parsed(received=len(result.rows), payload=payload)


class FileParser:
    """One worker process, started when first needed and replaced when it dies."""

    def __init__(self, *, memory_bytes: int, timeout_seconds: float) -> None:
        self.memory_bytes: Final = memory_bytes
        self.timeout_seconds: Final = timeout_seconds
        self._lock = threading.Lock()
        self._worker: subprocess.Popen[bytes] | None = None
        self._closed = False
        # Its own thread: a file waiting for the worker never holds up the loop's executor.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="file-parser")

    async def parse(self, request: ParseRequest) -> Parsed | UploadRefusal:
        """The file parsed in the worker; "Data limit exceeded" if the worker died doing it."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._parse, request)

    def pid(self) -> int | None:
        """The worker's process id, if one is alive (for tests and diagnostics)."""
        with self._lock:
            worker = self._worker
        return worker.pid if worker is not None and worker.poll() is None else None

    def close(self) -> None:
        """End the worker; a file being parsed is answered as refused."""
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
        if worker is not None:
            _stop(worker)
        self._executor.shutdown(wait=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _parse(self, request: ParseRequest) -> Parsed | UploadRefusal:
        worker = self._running_worker()
        # The timer kills a worker that overruns; its pipes then end and the read returns.
        timer = threading.Timer(self.timeout_seconds, worker.kill)
        timer.start()
        try:
            answer = _round_trip(worker, _encode(request))
        except (OSError, ValueError, msgspec.DecodeError) as error:
            self._drop(worker)
            log.warning(
                "file parser worker failed; upload refused",
                error=str(error),
                returncode=worker.poll(),
                size=len(request.data),
            )
            return UploadRefusal(DATA_LIMIT)
        finally:
            timer.cancel()
        if answer.parsed is not None:
            return answer.parsed
        return UploadRefusal(answer.refusal or DATA_LIMIT)

    def _running_worker(self) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._closed:
                raise RuntimeError("the file parser is closed")
            if self._worker is not None and self._worker.poll() is not None:
                _stop(self._worker)  # died since its last file (an operator, the OOM killer)
                self._worker = None
            if self._worker is None:
                self._worker = _start(self.memory_bytes, self.timeout_seconds)
            return self._worker

    def _drop(self, worker: subprocess.Popen[bytes]) -> None:
        with self._lock:
            if self._worker is worker:
                self._worker = None
        worker.kill()
        _stop(worker)


def _start(memory_bytes: int, timeout_seconds: float) -> subprocess.Popen[bytes]:
    cpu_seconds = math.ceil(timeout_seconds)
    return subprocess.Popen(  # noqa: S603 - this interpreter, this module
        [sys.executable, "-m", __name__, str(memory_bytes), str(cpu_seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None,  # inherited: a worker's traceback lands in the server's own stderr
        # Its own process group: Ctrl-C in the server's terminal is the server's to handle.
        process_group=0,
    )


def _round_trip(worker: subprocess.Popen[bytes], request: bytes) -> _Answer:
    if worker.stdin is None or worker.stdout is None:  # pragma: no cover
        raise OSError("worker has no pipes")
    _write_frame(worker.stdin, request)
    frame = _read_frame(worker.stdout)
    if frame is None:
        raise OSError(f"worker exited with {worker.wait()}")
    return _decode_answer(frame)


def _stop(worker: subprocess.Popen[bytes]) -> None:
    # Closing stdin is the worker's signal to exit; kill only one that does not.
    with contextlib.suppress(OSError):
        if worker.stdin is not None:
            worker.stdin.close()
    try:
        worker.wait(timeout=2)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    if worker.stdout is not None:
        worker.stdout.close()


def _write_frame(out: IO[bytes], payload: bytes) -> None:
    out.write(len(payload).to_bytes(_LENGTH_BYTES, "big") + payload)
    out.flush()


def _read_frame(source: IO[bytes]) -> bytes | None:
    """One frame, or None when the pipe ends first (the other side exited)."""
    header = source.read(_LENGTH_BYTES)
    if len(header) < _LENGTH_BYTES:
        return None
    size = int.from_bytes(header, "big")
    payload = source.read(size)
    return payload if len(payload) == size else None


def _serve_files(memory_bytes: int, cpu_seconds: int) -> None:
    """The worker: limit itself, then answer each file on stdin until stdin closes."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    gc.freeze()  # what was imported stays
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (frame := _read_frame(stdin)) is not None:
        # Each file gets `cpu_seconds` more than the worker has used: past them, SIGXCPU.
        usage = resource.getrusage(resource.RUSAGE_SELF)
        budget = math.ceil(usage.ru_utime + usage.ru_stime) + cpu_seconds
        if cpu_hard != resource.RLIM_INFINITY:
            budget = min(budget, cpu_hard)
        resource.setrlimit(resource.RLIMIT_CPU, (budget, cpu_hard))
        try:
            result = parse_here(_decode_request(frame))
        except MemoryError:
            result = UploadRefusal(DATA_LIMIT)
        del frame
        if isinstance(result, UploadRefusal):
            answer = _Answer(refusal=result.message)
        else:
            answer = _Answer(parsed=result)
        _write_frame(stdout, _encode(answer))


if __name__ == "__main__":
    _serve_files(int(sys.argv[1]), int(sys.argv[2]))
