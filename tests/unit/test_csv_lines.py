"""Csv lines as PostgreSQL's COPY writes them, on every Python version: a bare carriage return
in a cell is quoted, like a line feed, a comma or a quote."""

from __future__ import annotations

import csv
import io

import pytest

from lead_ledger.service import csv_lines

ROWS: list[list[object]] = [
    ["plain", "a,b", 'say "hi"', "", None, 7],
    ["bare\rreturn", "line\nfeed", "both\r\n", "\r"],
    ["after", "it"],
]
# What PostgreSQL's COPY ... (FORMAT csv) gives for the same cells (None: NULL, unquoted).
EXPECTED = 'plain,"a,b","say ""hi""",,,7\n"bare\rreturn","line\nfeed","both\r\n","\r"\nafter,it\n'


@pytest.mark.parametrize("native", [True, False])
def test_cells_holding_line_breaks_are_quoted(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    """Both ways of writing (the writer's own quoting where this Python quotes "\\r", the
    second writer where it does not) give the same lines, which read back as the same rows."""
    if native and not csv_lines.QUOTES_CARRIAGE_RETURNS:
        pytest.skip("this Python's csv writer leaves a bare carriage return unquoted")
    monkeypatch.setattr(csv_lines, "QUOTES_CARRIAGE_RETURNS", native)
    out = io.StringIO()
    lines = csv_lines.CsvLines(out)
    lines.writerow(ROWS[0])
    lines.writerows(ROWS[1:])
    assert out.getvalue() == EXPECTED
    read = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert read == [["" if c is None else str(c) for c in row] for row in ROWS]
