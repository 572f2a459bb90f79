"""The rebuild's progress bars as a terminal shows them, and their silence elsewhere."""

from __future__ import annotations

import io
import re
import time

from rich.console import Console

from lead_ledger.cli_projections import progress_bar


def _feed(console: Console) -> None:
    with progress_bar(console) as update:
        update("sql", 0, 1_000)
        time.sleep(0.3)
        update("sql", 500, 1_000)
        time.sleep(0.3)
        update("sql", 1_000, 1_000)
        update("read", 1_200, 1_200)
        update("index", 4, 4)
        update("swap", 1, 1)


def test_a_terminal_sees_every_phase_with_its_rate() -> None:
    """On a terminal the bars show each rebuild phase's label, its counts and an events/s rate."""
    out = io.StringIO()
    _feed(Console(file=out, force_terminal=True, width=120, color_system=None))
    text = out.getvalue()
    for label in ("apply lead streams (SQL)", "apply events", "build indexes", "catch up and swap"):
        assert label in text
    assert "1000/1000" in text
    assert re.search(r"[\d,]+ events/s", text), text


def test_a_pipe_sees_nothing() -> None:
    """Written to a non-terminal (a pipe, a log), the progress bars print nothing."""
    out = io.StringIO()
    _feed(Console(file=out, force_terminal=False))
    assert out.getvalue() == ""
