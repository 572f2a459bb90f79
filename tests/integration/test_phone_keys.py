"""Dedupe keys for many leads: worker processes give exactly the keys computed in place."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator

import msgspec
import pytest

from lead_ledger.ledger.phones import dedupe_keys
from lead_ledger.service import key_workers
from lead_ledger.service.key_workers import Batch, KeyWorkers
from lead_ledger.service.phone_keys import CHUNK_LEADS, PARALLEL_FROM, KeysAhead, dedupe_keys_many


@pytest.fixture
def workers() -> Iterator[KeyWorkers]:
    """Key workers of this test's own, closed after it."""
    with KeyWorkers() as owned:
        yield owned


def numbers(count: int) -> list[list[str]]:
    """Leads with one to three numbers in the shapes uploads carry."""
    rng = random.Random(7)  # noqa: S311 - reproducible test data, not secrets
    shapes = ("{}", "0{}", "+91{}", "91{}", "{} ", "({}) ext")
    return [
        [rng.choice(shapes).format(rng.randrange(6_000_000_000, 10_000_000_000))]
        * rng.randint(1, 3)
        for _ in range(count)
    ]


async def test_large_batch_matches_in_process_keys(workers: KeyWorkers) -> None:
    """Above the threshold the batch goes to worker processes; the keys are the same, in order."""
    phones = numbers(PARALLEL_FROM)
    assert sum(map(len, phones)) >= PARALLEL_FROM
    expected = [dedupe_keys(lead, "IN") for lead in phones]
    assert await dedupe_keys_many(phones, "IN", workers) == expected


async def test_small_batch_and_no_region() -> None:
    """Below the threshold, and without a region, the keys are dedupe_keys' own."""
    phones = [["98765 43210", "+919876543210"], ["0044 20 7946 0000"], [""]]
    assert await dedupe_keys_many(phones, None) == [dedupe_keys(p, None) for p in phones]


async def test_workers_outlive_a_batch_and_serve_the_next(workers: KeyWorkers) -> None:
    """The worker processes started for one large batch answer the next one too."""
    phones = numbers(PARALLEL_FROM)
    await dedupe_keys_many(phones, "IN", workers)
    before = sorted(workers.pids())
    assert before
    assert await dedupe_keys_many(phones, "IN", workers) == [
        dedupe_keys(lead, "IN") for lead in phones
    ]
    assert sorted(workers.pids()) == before


async def test_a_killed_worker_costs_nothing_but_time(workers: KeyWorkers) -> None:
    """Workers killed between batches: the next batch still gets every key, in order, and
    dead workers are replaced rather than reused."""
    phones = numbers(PARALLEL_FROM)
    await dedupe_keys_many(phones, "IN", workers)
    killed = workers.pids()
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    # Two chunks, so that both workers are needed again.
    phones = numbers(2 * CHUNK_LEADS)
    assert await dedupe_keys_many(phones, "IN", workers) == [
        dedupe_keys(lead, "IN") for lead in phones
    ]
    assert workers.pids()
    assert not set(workers.pids()) & set(killed)


async def test_keys_ahead_hands_out_chunks_in_order(workers: KeyWorkers) -> None:
    """Taken in sizes that cut across chunks, streaming or not, the keys are the batch's own."""
    phones = numbers(2 * CHUNK_LEADS + 17)
    expected = [dedupe_keys(lead, "IN") for lead in phones]
    for streaming in (False, True):
        keys = KeysAhead(phones, "IN", streaming=streaming, workers=workers)
        assert keys.chunked
        taken: list[list[str]] = []
        for size in (1, CHUNK_LEADS, 5, CHUNK_LEADS - 6, 17):
            taken.extend(await keys.take(size))
        keys.cancel()
        assert taken == expected


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:  # noqa: PTH123 - a one-line read
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        # Gone before the open, or (ESRCH) while reading: /proc's entry went with the process.
        return True


async def _until_dead(pid: int, seconds: float = 5) -> bool:
    for _ in range(int(seconds / 0.05)):
        if _dead(pid):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")  # noqa: PTH110
async def test_a_cancelled_batch_kills_the_worker_it_waited_on(workers: KeyWorkers) -> None:
    """A stopped (hung) worker does not hold a thread past its caller's cancellation: the
    worker is killed, and the next batch gets its keys from a fresh one."""
    phones = numbers(PARALLEL_FROM)
    await dedupe_keys_many(phones, "IN", workers)
    stopped = workers.pids()
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(workers.compute(Batch("IN", phones)), 0.5)
        assert any([await _until_dead(pid, 0.5) for pid in stopped])
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    assert await dedupe_keys_many(phones, "IN", workers) == [
        dedupe_keys(lead, "IN") for lead in phones
    ]


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")  # noqa: PTH110
async def test_a_worker_silent_past_the_deadline_is_replaced(
    workers: KeyWorkers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that does not answer in time is killed and the batch runs on a fresh one."""
    phones = numbers(PARALLEL_FROM)
    await dedupe_keys_many(phones, "IN", workers)
    monkeypatch.setattr(key_workers, "ANSWER_DEADLINE_SECONDS", 0.5)
    stopped = workers.pids()
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        assert await dedupe_keys_many(phones, "IN", workers) == [
            dedupe_keys(p, "IN") for p in phones
        ]
        assert any([await _until_dead(pid, 1) for pid in stopped])
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


async def test_without_workers_a_large_batch_is_computed_in_process() -> None:
    """No key workers (a script, a test): the keys still come in chunks, the same, in order."""
    phones = numbers(2 * CHUNK_LEADS + 17)
    keys = KeysAhead(phones, "IN", streaming=True)
    try:
        assert keys.chunked
        assert await keys.take(len(phones)) == [dedupe_keys(lead, "IN") for lead in phones]
    finally:
        keys.cancel()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")  # noqa: PTH110
async def test_closed_workers_end_and_later_batches_are_computed_in_process() -> None:
    """Closing the workers ends their processes; a batch after that still gets every key."""
    phones = numbers(PARALLEL_FROM)
    with KeyWorkers() as workers:
        workers.warm()
        await dedupe_keys_many(phones, "IN", workers)
        started = workers.pids()
        assert started
    assert all([await _until_dead(pid) for pid in started])
    assert workers.pids() == []
    assert await dedupe_keys_many(phones, "IN", workers) == [dedupe_keys(p, "IN") for p in phones]
    assert workers.pids() == []


def test_a_worker_whose_owner_is_gone_exits_without_a_traceback() -> None:
    """The owner stops reading (killed) before the answer is written: the worker's write finds
    the pipe closed, and it exits quietly, printing nothing into the owner's log."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "lead_ledger.service.key_workers"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert worker.stdin is not None
    assert worker.stdout is not None
    assert worker.stderr is not None
    worker.stdout.close()
    frame = msgspec.msgpack.encode(Batch(region="IN", phones=[["9876543210"]] * 2000))
    worker.stdin.write(len(frame).to_bytes(4, "big") + frame)
    worker.stdin.close()
    assert worker.wait(timeout=30) == 0
    with worker.stderr:
        assert worker.stderr.read() == b""
