"""Worker processes that compute phone dedupe keys, owned by whoever creates a `KeyWorkers`.

Starting one (`python -m lead_ledger.service.key_workers`, importing `phonenumbers` and
compiling its patterns) takes ~0.15 s, which a one-shot worker paid on every upload. The app
creates one `KeyWorkers` when it starts and closes it when it stops (`create_app`); `serve`
warms it, so its workers start with the server; elsewhere the first large batch starts them. A
worker reads length-prefixed msgpack batches on stdin and answers each on stdout until stdin
closes, so it exits when its owner closes it, or with its parent, even one killed with SIGKILL.

Plain subprocesses rather than `multiprocessing`: its spawn and forkserver start methods import
the parent's main module again in every worker, which runs any script that lacks a
`__main__` guard a second time, and fork is unsafe in a process with threads. Each round trip
runs on a thread of the owner's own executor (`loop.run_in_executor`), blocking on the pipes
there, so the workers belong to no event loop and serve every loop of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Final, Self

import msgspec
import structlog

from lead_ledger.ledger.phones import dedupe_keys

log = structlog.get_logger(__name__)

MAX_WORKERS: Final = 8
_LENGTH_BYTES: Final = 4
# A chunk of 4,096 leads takes ~60 ms; a worker silent this long is stuck (stopped, or in a
# pathological pattern match) and is killed, so that no thread waits on it forever.
ANSWER_DEADLINE_SECONDS: Final = 60.0


class Batch(msgspec.Struct, frozen=True):
    """Leads' numbers (each lead's list) and the account's region."""

    region: str | None
    phones: list[list[str]]


_encode_batch: Final = msgspec.msgpack.Encoder().encode
_decode_batch: Final = msgspec.msgpack.Decoder(Batch).decode
_encode_keys: Final = msgspec.msgpack.Encoder().encode
_decode_keys: Final = msgspec.msgpack.Decoder(list[list[str]]).decode


def keys_of(phones: Sequence[list[str]], region: str | None) -> list[list[str]]:
    """`dedupe_keys` of each lead's numbers, here and now."""
    return [dedupe_keys(numbers, region) for numbers in phones]


def worker_count() -> int:
    """One worker per core this process may run on (its affinity, which containers narrow),
    within MAX_WORKERS."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(usable or 1, MAX_WORKERS))


class KeyWorkers:
    """Up to `count` worker processes and the threads that talk to them, alive until `close`.

    Whoever creates one closes it (the app in its cleanup context; a script with `with`). Once
    closed, `compute` raises WorkerError, which callers answer by computing in process.
    """

    def __init__(self, count: int | None = None) -> None:
        self.count: Final = worker_count() if count is None else max(1, count)
        self._pool = _Pool()
        # Its own threads, never the loop's default executor, where key chunks would queue
        # other blocking work behind them, and start more workers than cores when batches
        # overlap. Threads start on demand: an owner that never computes starts none.
        self._executor = ThreadPoolExecutor(
            max_workers=self.count, thread_name_prefix="key-workers"
        )

    def warm(self) -> None:
        """Start the workers now (they import in the background), so no batch waits for them.

        A worker that cannot start is no reason not to serve: batches start their own, or
        compute their keys in process. On one core there is nothing to gain: none starts.
        """
        try:
            self._pool.warm(self.count if self.count > 1 else 0)
        except OSError as error:
            log.warning("phone key workers did not start", error=str(error))

    async def compute(self, batch: Batch) -> list[list[str]]:
        """The batch's keys from a worker, on a thread of this object's own. Cancelled, it
        kills the worker it was using, so that the thread is free at once."""
        call = _Call()
        try:
            running = asyncio.get_running_loop().run_in_executor(
                self._executor, self._pool.run, batch, call
            )
        except RuntimeError as error:  # the executor is shut down
            raise WorkerError("the key workers are closed") from error
        try:
            return await running
        except asyncio.CancelledError:
            call.abort()
            raise

    def pids(self) -> list[int]:
        """Process ids of the idle workers alive (for tests and diagnostics)."""
        return self._pool.pids()

    def close(self) -> None:
        """End the idle workers; a batch still running ends its worker when it returns."""
        self._executor.shutdown(wait=False)
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class WorkerError(RuntimeError):
    """A worker died, or answered something other than one key list per lead."""


class _Call:
    """One batch's round trip, which the event loop may abort from outside its thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._aborted = False

    def use(self, worker: _Worker) -> _Worker:
        with self._lock:
            if self._aborted:
                worker.process.kill()
                worker.close()
                raise WorkerError("the batch was cancelled")
            self._worker = worker
        return worker

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            if self._worker is not None:
                # Its pipe then ends, and the thread reading it returns.
                self._worker.process.kill()


class _Worker:
    """One long-lived worker process and its pipes. Used by one thread at a time.

    Its pipes are used through their file descriptors with `select`, the writing end
    non-blocking, so that a worker that stops reading or answering is noticed at the deadline
    instead of blocking the thread for good.
    """

    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, this module
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # Inherited: a worker's traceback lands in the server's own stderr.
            stderr=None,
            bufsize=0,
            # Its own process group: Ctrl-C in the server's terminal is the server's to handle
            # (a graceful stop that may still need its workers), not the workers'.
            process_group=0,
        )
        if self.process.stdin is None or self.process.stdout is None:  # pragma: no cover
            raise WorkerError("worker has no pipes")
        self._to = self.process.stdin.fileno()
        self._from = self.process.stdout.fileno()
        os.set_blocking(self._to, False)

    def run(self, batch: Batch) -> list[list[str]]:
        deadline = time.monotonic() + ANSWER_DEADLINE_SECONDS
        payload = _encode_batch(batch)
        _send(self._to, len(payload).to_bytes(_LENGTH_BYTES, "big") + payload, deadline)
        header = _receive(self._from, _LENGTH_BYTES, deadline)
        if not header:
            raise WorkerError(f"worker exited with {self.process.poll()}")
        frame = _receive(self._from, int.from_bytes(header, "big"), deadline)
        keys = _decode_keys(frame)
        if len(keys) != len(batch.phones):
            raise WorkerError(f"{len(keys)} results for {len(batch.phones)} leads")
        return keys

    def close(self) -> None:
        # Closing stdin is the worker's signal to exit; kill only one that does not.
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class _Pool:
    """The idle workers. No more than the executor's threads exist: only that many threads
    ever ask for one at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._closed = False

    def warm(self, count: int) -> None:
        with self._lock:
            while len(self._idle) < count:
                self._idle.append(_Worker())

    def run(self, batch: Batch, call: _Call) -> list[list[str]]:
        """One batch on an idle worker (started if none is idle); blocking, for a thread.

        A worker that fails is dropped and the batch tried once more on a fresh one: an idle
        worker may have been killed since its last batch (out of memory, an operator). A
        cancelled call is not tried again (`_Call.use` refuses), nor one queued before a close.
        """
        if self._closed:
            raise WorkerError("the key workers are closed")
        worker = self._idle_worker()
        try:
            keys = self._run_on(call.use(worker or _Worker()), batch)
        except (OSError, msgspec.DecodeError, WorkerError):
            if worker is None:
                raise
            keys = self._run_on(call.use(_Worker()), batch)
        return keys

    def _idle_worker(self) -> _Worker | None:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.poll() is None:
                    return worker
                worker.close()
        return None

    def _run_on(self, worker: _Worker, batch: Batch) -> list[list[str]]:
        try:
            keys = worker.run(batch)
        except BaseException:
            # Its state is unknown (dead, or mid-frame): never hand it out again.
            worker.process.kill()
            worker.close()
            raise
        with self._lock:
            closed = self._closed
            if not closed:
                self._idle.append(worker)
        if closed:
            worker.close()  # the pool was closed while this batch ran: nothing will reuse it
        return keys

    def pids(self) -> list[int]:
        """The idle workers still alive; dead ones are dropped on the way."""
        with self._lock:
            alive = [worker for worker in self._idle if worker.process.poll() is None]
            dead = [worker for worker in self._idle if worker not in alive]
            self._idle = alive
        for worker in dead:
            worker.close()
        return [worker.process.pid for worker in alive]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()


def _send(fd: int, data: bytes, deadline: float) -> None:
    """All of `data` into a non-blocking pipe, or WorkerError at the deadline."""
    view = memoryview(data)
    while view:
        _wait_for(None, fd, deadline)
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            continue
        view = view[written:]


def _receive(fd: int, size: int, deadline: float) -> bytes:
    """`size` bytes from a pipe; b"" if it ends before the first; WorkerError if it ends
    within them or the deadline passes."""
    received = bytearray()
    while len(received) < size:
        _wait_for(fd, None, deadline)
        chunk = os.read(fd, size - len(received))
        if not chunk:
            if received:
                raise WorkerError("truncated frame")
            return b""
        received += chunk
    return bytes(received)


def _wait_for(readable: int | None, writable: int | None, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    ready = (
        select.select(
            [readable] if readable is not None else [],
            [writable] if writable is not None else [],
            [],
            remaining,
        )
        if remaining > 0
        else ([], [], [])
    )
    if not ready[0] and not ready[1]:
        raise WorkerError(f"no answer in {ANSWER_DEADLINE_SECONDS:.0f} s")


def _write_frame(out: IO[bytes], payload: bytes) -> None:
    out.write(len(payload).to_bytes(_LENGTH_BYTES, "big") + payload)
    out.flush()


def _read_frame(source: IO[bytes]) -> bytes | None:
    """One frame, or None at a clean end of input."""
    header = source.read(_LENGTH_BYTES)
    if not header:
        return None
    if len(header) < _LENGTH_BYTES:
        raise WorkerError("truncated frame header")
    size = int.from_bytes(header, "big")
    payload = source.read(size)
    if len(payload) < size:
        raise WorkerError("truncated frame")
    return payload


def _serve_batches() -> None:
    """The worker: answer each batch on stdin with its keys on stdout, until stdin closes."""
    # What was imported stays; the keys are short-lived strings that reference counting frees.
    gc.freeze()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        while (frame := _read_frame(stdin)) is not None:
            batch = _decode_batch(frame)
            _write_frame(stdout, _encode_keys(keys_of(batch.phones, batch.region)))
    except (BrokenPipeError, WorkerError):
        # The owner is gone (killed mid-batch): nobody reads the answer, and a traceback
        # would land in the owner's log, whose stderr this process shares. Exit quietly,
        # with stdout pointed at nothing so the interpreter's last flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())


if __name__ == "__main__":
    _serve_batches()
