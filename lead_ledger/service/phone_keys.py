"""Dedupe keys for many leads at once, on every core when there are enough of them.

`phonenumbers` spends ~15 µs per number (parse, then validity against the region's metadata),
so the keys of a 50,000-row upload cost ~0.75 s of one core: the largest single cost of a bulk
insert in Python, and time during which an event loop would answer nothing. The keys depend on
nothing but the numbers and the region, so a large batch is split across worker processes
(`key_workers.py`) while the loop stays free; a small one (every interactive request) is
computed in place, where a round trip to another process would cost more than it saves.

The workers are the caller's (`KeyWorkers`, owned by the app). A caller without them, or whose
workers fail, still gets every key: chunk by chunk on a thread of this process, slower.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

import msgspec
import structlog

from lead_ledger.service.key_workers import Batch, KeyWorkers, WorkerError, keys_of

log = structlog.get_logger(__name__)

# Below this many numbers the batch stays in this process.
PARALLEL_FROM: Final = 4_096
# Leads per chunk sent to a worker: large enough that a chunk's append and projection amortise
# their round trips, small enough that the first chunk is ready soon.
CHUNK_LEADS: Final = 4_096


async def dedupe_keys_many(
    phones: Sequence[list[str]], region: str | None, workers: KeyWorkers | None = None
) -> list[list[str]]:
    """`dedupe_keys` of each lead's numbers, in order; in `workers` for large batches."""
    keys = KeysAhead(phones, region, workers=workers)
    try:
        return await keys.take(len(phones))
    finally:
        keys.cancel()


class KeysAhead:
    """The keys of a batch of leads, computed ahead in chunks while the caller uses earlier ones.

    A large batch is cut into chunks of `CHUNK_LEADS`; one lane per worker process (one lane on
    a thread of this process without `workers`) works through every lane-count-th chunk, so the
    first chunk's keys are ready after ~60 ms and a writer can append and project it while the
    workers compute the rest (`streaming`: one lane fewer than cores, leaving one to the writer
    and its database). `take(n)` returns the next `n` leads' keys in order, waiting only for
    the chunks they fall in. A small batch, or any batch on one core, is computed in place.
    """

    def __init__(
        self,
        phones: Sequence[list[str]],
        region: str | None,
        *,
        streaming: bool = False,
        workers: KeyWorkers | None = None,
    ) -> None:
        self._taken = 0
        self._ready: list[list[str]] = []
        loop = asyncio.get_running_loop()
        one_core = workers is not None and workers.count == 1
        if one_core or sum(len(numbers) for numbers in phones) < PARALLEL_FROM:
            done: asyncio.Future[list[list[str]]] = loop.create_future()
            done.set_result(keys_of(phones, region))
            self._chunks = [done]
            self._lanes: list[asyncio.Task[None]] = []
            return
        batches = [
            Batch(region, list(phones[i : i + CHUNK_LEADS]))
            for i in range(0, len(phones), CHUNK_LEADS)
        ]
        self._chunks = [loop.create_future() for _ in batches]
        # A caller that writes chunks as they arrive needs a core of its own, and so does the
        # database writing them: one lane fewer than workers (measured: 0.1 s less on 2 cores
        # for 50,000 leads than two lanes competing with the writer). In process, one lane:
        # threads of one interpreter would only take turns.
        count = workers.count if workers is not None else 1
        lanes = min(max(1, count - 1) if streaming else count, len(batches))
        self._lanes = [
            asyncio.ensure_future(
                self._lane(workers, batches[lane::lanes], self._chunks[lane::lanes])
            )
            for lane in range(lanes)
        ]

    @property
    def chunked(self) -> bool:
        """Whether the keys arrive in several chunks (a large batch, worker processes)."""
        return len(self._chunks) > 1

    async def take(self, count: int) -> list[list[str]]:
        """The keys of the next `count` leads, in order."""
        while len(self._ready) < count:
            self._ready.extend(await self._chunks[self._taken])
            self._taken += 1
        taken, self._ready = self._ready[:count], self._ready[count:]
        return taken

    def cancel(self) -> None:
        """Stop computing chunks nobody will take (the caller failed or is done)."""
        for lane in self._lanes:
            lane.cancel()

    @staticmethod
    async def _lane(
        workers: KeyWorkers | None,
        batches: list[Batch],
        chunks: list[asyncio.Future[list[list[str]]]],
    ) -> None:
        try:
            for batch, chunk in zip(batches, chunks, strict=True):
                keys = await _keys_of_chunk(workers, batch)
                if not chunk.done():
                    chunk.set_result(keys)
        except Exception as error:  # noqa: BLE001 - handed to whoever waits for the keys
            for chunk in chunks:
                if not chunk.done():
                    chunk.set_exception(error)
        finally:
            for chunk in chunks:  # cancelled: nobody waits any more
                chunk.cancel()


async def _keys_of_chunk(workers: KeyWorkers | None, batch: Batch) -> list[list[str]]:
    """One chunk's keys: from a worker process, else on a thread of this one (off the loop)."""
    if workers is not None:
        try:
            return await workers.compute(batch)
        except (OSError, msgspec.DecodeError, WorkerError) as error:
            # The keys are still needed: compute them here, slower, rather than fail.
            log.warning("phone key worker failed; computing in process", error=str(error))
    return await asyncio.to_thread(keys_of, batch.phones, batch.region)
