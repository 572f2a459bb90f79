"""The process settings `serve` applies before serving (cli._tune_runtime)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from lead_ledger import cli


@pytest.fixture
def restored_runtime() -> Iterator[None]:
    interval, threshold = sys.getswitchinterval(), gc.get_threshold()
    yield
    sys.setswitchinterval(interval)
    gc.set_threshold(*threshold)
    gc.unfreeze()


def test_serve_hands_the_gil_back_to_its_event_loop_within_half_a_millisecond(
    restored_runtime: None,
) -> None:
    """The switch interval is 0.5 ms, not CPython's 5 ms, and collections are rarer."""
    sys.setswitchinterval(0.005)
    cli._tune_runtime()  # what _serve calls
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    assert gc.get_threshold() == (20_000, 20, 20)
    assert gc.get_freeze_count() > 0
