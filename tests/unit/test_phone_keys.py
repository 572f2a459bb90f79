"""Dedupe keys for many leads: worker processes give exactly the keys computed in place."""

from __future__ import annotations

import os
import random
import signal

from lead_ledger.ledger.phones import dedupe_keys
from lead_ledger.service.key_workers import worker_pids
from lead_ledger.service.phone_keys import CHUNK_LEADS, PARALLEL_FROM, KeysAhead, dedupe_keys_many


def numbers(count: int) -> list[list[str]]:
    """Leads with one to three numbers in the shapes uploads carry."""
    rng = random.Random(7)  # noqa: S311 - reproducible test data, not secrets
    shapes = ("{}", "0{}", "+91{}", "91{}", "{} ", "({}) ext")
    return [
        [rng.choice(shapes).format(rng.randrange(6_000_000_000, 10_000_000_000))]
        * rng.randint(1, 3)
        for _ in range(count)
    ]


async def test_large_batch_matches_in_process_keys() -> None:
    """Above the threshold the batch goes to worker processes; the keys are the same, in order."""
    phones = numbers(PARALLEL_FROM)
    assert sum(map(len, phones)) >= PARALLEL_FROM
    expected = [dedupe_keys(lead, "IN") for lead in phones]
    assert await dedupe_keys_many(phones, "IN") == expected


async def test_small_batch_and_no_region() -> None:
    """Below the threshold, and without a region, the keys are dedupe_keys' own."""
    phones = [["98765 43210", "+919876543210"], ["0044 20 7946 0000"], [""]]
    assert await dedupe_keys_many(phones, None) == [dedupe_keys(p, None) for p in phones]


async def test_workers_outlive_a_batch_and_serve_the_next() -> None:
    """The worker processes started for one large batch answer the next one too."""
    phones = numbers(PARALLEL_FROM)
    await dedupe_keys_many(phones, "IN")
    before = sorted(worker_pids())
    assert before
    assert await dedupe_keys_many(phones, "IN") == [dedupe_keys(lead, "IN") for lead in phones]
    assert sorted(worker_pids()) == before


async def test_a_killed_worker_costs_nothing_but_time() -> None:
    """Workers killed between batches: the next batch still gets every key, in order, and
    dead workers are replaced rather than reused."""
    phones = numbers(PARALLEL_FROM)
    await dedupe_keys_many(phones, "IN")
    killed = worker_pids()
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    # Two chunks, so that both workers are needed again.
    phones = numbers(2 * CHUNK_LEADS)
    assert await dedupe_keys_many(phones, "IN") == [dedupe_keys(lead, "IN") for lead in phones]
    assert worker_pids()
    assert not set(worker_pids()) & set(killed)


async def test_keys_ahead_hands_out_chunks_in_order() -> None:
    """Taken in sizes that cut across chunks, streaming or not, the keys are the batch's own."""
    phones = numbers(2 * CHUNK_LEADS + 17)
    expected = [dedupe_keys(lead, "IN") for lead in phones]
    for streaming in (False, True):
        keys = KeysAhead(phones, "IN", streaming=streaming)
        assert keys.chunked
        taken: list[list[str]] = []
        for size in (1, CHUNK_LEADS, 5, CHUNK_LEADS - 6, 17):
            taken.extend(await keys.take(size))
        keys.cancel()
        assert taken == expected
