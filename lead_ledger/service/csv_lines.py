"""Csv lines that end in "\\n" and quote every cell holding a line break, "\\r" included.

Exports are csv as PostgreSQL's COPY writes it: lines end in "\\n", and a cell holding a comma,
a quote, "\\n" or "\\r" is quoted. CPython's writer quotes a bare "\\r" under QUOTE_MINIMAL only
since 3.11.9 (gh-67044); before, with a "\\n" line end, it left such a cell bare, and every csv
reader split the row there. On those versions a row holding "\\r" is written by a second writer
that ends lines in "\\r\\n" (which quotes both characters), its line end put back to "\\n".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import IO, Final

LINE_END: Final = "\n"


def _quotes_carriage_returns() -> bool:
    out = io.StringIO()
    csv.writer(out, lineterminator=LINE_END).writerow(["\r"])
    return out.getvalue() == '"\r"\n'


QUOTES_CARRIAGE_RETURNS: Final = _quotes_carriage_returns()


def _holds_carriage_return(row: Iterable[object]) -> bool:
    return any(isinstance(cell, str) and "\r" in cell for cell in row)


class CsvLines:
    """`csv.writer(out, lineterminator="\\n")`, with cells holding "\\r" quoted on every
    Python version."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._writer = csv.writer(out, lineterminator=LINE_END)
        self._line = io.StringIO()
        self._quoting = csv.writer(self._line, lineterminator="\r\n")

    def writerow(self, row: Iterable[object]) -> None:
        cells = list(row)
        if QUOTES_CARRIAGE_RETURNS or not _holds_carriage_return(cells):
            self._writer.writerow(cells)
            return
        self._line.seek(0)
        self._line.truncate()
        self._quoting.writerow(cells)
        self._out.write(self._line.getvalue()[: -len("\r\n")] + LINE_END)

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        if QUOTES_CARRIAGE_RETURNS:
            self._writer.writerows(rows)
            return
        for row in rows:
            self.writerow(row)
