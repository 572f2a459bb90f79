"""Dedupe keys for many leads: worker processes give exactly the keys computed in place."""

from __future__ import annotations

import random

from lead_ledger.ledger.phones import dedupe_keys
from lead_ledger.service.phone_keys import PARALLEL_FROM, dedupe_keys_many


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
