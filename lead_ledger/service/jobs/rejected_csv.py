"""A job's refused rows as a csv file: what Ozonetel bulk V4's failedFilePath links to, and what
any job's rejected rows can be read as (`GET /v1/jobs/{id}/rejected.csv`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from lead_ledger.ledger.job_events import RejectedRow
from lead_ledger.service.spreadsheet_cells import spreadsheet_text

ROW_NUMBER = "row_number"
REASON = "reason"


def rejected_csv(rows: Sequence[RejectedRow], columns: Sequence[str] = ()) -> str:
    """One line per refused row: its number, its cells as sent (every name any row has, in
    the upload's order, `columns`, then any other in the order first met), and the reason. An
    erased row keeps its number and reason, and its cells are blank; cells that a spreadsheet
    would run as formulas are quoted as text."""
    names: dict[str, None] = dict.fromkeys(c for c in columns if c not in (ROW_NUMBER, REASON))
    for row in rows:
        for name in row.row or ():
            if name not in (ROW_NUMBER, REASON):
                names.setdefault(name)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([ROW_NUMBER, *(spreadsheet_text(name) for name in names), REASON])
    for row in rows:
        cells = row.row or {}
        writer.writerow(
            [
                row.row_number,
                *(spreadsheet_text(cells.get(name)) for name in names),
                spreadsheet_text(row.description),
            ]
        )
    return out.getvalue()
