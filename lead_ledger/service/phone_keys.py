"""Dedupe keys for many leads at once, on every core when there are enough of them.

`phonenumbers` spends ~50 µs per number (parse, then validity against the region's metadata),
so the keys of a 50,000-row upload cost ~2.5 s of one core: the largest single cost of a bulk
insert, and 2.5 s during which an event loop would answer nothing. The keys depend on nothing
but the numbers and the region, so a large batch is split across short-lived worker processes
(`python -m lead_ledger.service.phone_keys`, ~0.1 s to start) while the loop stays free; a small
one (every interactive request) is computed in place, where starting a process would cost more
than it saves.

Plain subprocesses rather than `multiprocessing`: its spawn and forkserver start methods import
the parent's main module again in every worker, which runs any script that lacks a
`__main__` guard a second time, and fork is unsafe in a process with threads.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Final

import msgspec
import structlog

from lead_ledger.ledger.phones import dedupe_keys

log = structlog.get_logger(__name__)

# Below this many numbers the batch stays in this process.
PARALLEL_FROM: Final = 4_096
MAX_WORKERS: Final = 8


class _Batch(msgspec.Struct, frozen=True):
    region: str | None
    phones: list[list[str]]


_encode_batch: Final = msgspec.msgpack.Encoder().encode
_decode_batch: Final = msgspec.msgpack.Decoder(_Batch).decode
_encode_keys: Final = msgspec.msgpack.Encoder().encode
_decode_keys: Final = msgspec.msgpack.Decoder(list[list[str]]).decode


def _keys_of(phones: Sequence[list[str]], region: str | None) -> list[list[str]]:
    return [dedupe_keys(numbers, region) for numbers in phones]


def _workers() -> int:
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


async def dedupe_keys_many(phones: Sequence[list[str]], region: str | None) -> list[list[str]]:
    """`dedupe_keys` of each lead's numbers, in order; in parallel processes for large batches."""
    workers = _workers()
    if workers == 1 or sum(len(numbers) for numbers in phones) < PARALLEL_FROM:
        return _keys_of(phones, region)
    size = -(-len(phones) // workers)
    chunks = [list(phones[i : i + size]) for i in range(0, len(phones), size)]
    try:
        results = await asyncio.gather(*(_in_worker(chunk, region) for chunk in chunks))
    except (OSError, msgspec.DecodeError, _WorkerError) as error:
        # The keys are still needed: compute them here, slower, rather than fail the write.
        log.warning("phone key workers failed; computing in process", error=str(error))
        return _keys_of(phones, region)
    return [keys for chunk in results for keys in chunk]


class _WorkerError(RuntimeError):
    pass


async def _in_worker(phones: list[list[str]], region: str | None) -> list[list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        __name__,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(_encode_batch(_Batch(region, phones)))
    if process.returncode != 0:
        raise _WorkerError(f"exit {process.returncode}: {err.decode(errors='replace')[-500:]}")
    keys = _decode_keys(out)
    if len(keys) != len(phones):
        raise _WorkerError(f"{len(keys)} results for {len(phones)} leads")
    return keys


def _serve_one_batch() -> None:
    """The worker: one msgpack batch on stdin, its keys as msgpack on stdout."""
    batch = _decode_batch(sys.stdin.buffer.read())
    sys.stdout.buffer.write(_encode_keys(_keys_of(batch.phones, batch.region)))


if __name__ == "__main__":
    _serve_one_batch()
