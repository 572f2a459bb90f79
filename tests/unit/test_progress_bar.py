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
        time.sleep(0.2)
        update("index", 2, 4)
        time.sleep(0.3)
        update("index", 4, 4)
        update("swap", 0, 1)  # as the rebuild reports it: the start of its last phase


def test_a_terminal_sees_every_phase_with_its_rate() -> None:
    """On a terminal the bars show each rebuild phase's label, its counts and its rate in what
    it counts (events, indexes), and every bar ends full."""
    out = io.StringIO()
    _feed(Console(file=out, force_terminal=True, width=120, color_system=None))
    text = out.getvalue()
    for label in ("apply lead streams (SQL)", "apply events", "build indexes", "catch up and swap"):
        assert label in text
    assert "1000/1000" in text
    assert re.search(r"[\d,]+ events/s", text), text
    assert re.search(r"[\d,]+ indexes/s", text), text
    # Every bar ends full, the last phase's too, which reports only its start; a phase that
    # counts nothing shows no rate.
    last = text[text.rfind("catch up and swap") :].split("\n", 1)[0]
    assert " 1/1 " in last
    assert "/s" not in last


def test_a_pipe_sees_nothing() -> None:
    """Written to a non-terminal (a pipe, a log), the progress bars print nothing."""
    out = io.StringIO()
    _feed(Console(file=out, force_terminal=False))
    assert out.getvalue() == ""
