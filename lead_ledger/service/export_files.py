"""An export's file: its columns, and the csv, xlsx or jsonl written from its leads.

Two passes, each flat in memory whatever the number of leads: the leads are first spooled as
JSON lines to a temporary file while the CRM and extra field names are collected (a csv header
names every column before the first row, and the names are known only at the end); the file is
then written from the spool. jsonl is the spool itself: raw values, nested `crm` and `extra`.
csv and xlsx flatten them into `section:field` and `extra:<name>` columns, and escape cells a
spreadsheet would run as formulas (service/spreadsheet_cells.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final, Literal

import msgspec
import xlsxwriter

from lead_ledger.ledger.events import FIELD_NAMES
from lead_ledger.service.export_rows import ExportLead
from lead_ledger.service.spreadsheet_cells import spreadsheet_cell, spreadsheet_text

ExportFormat = Literal["csv", "xlsx", "jsonl"]
CONTENT_TYPES: Final[dict[ExportFormat, str]] = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "jsonl": "application/x-ndjson",
}
# The canonical fields an export may name in `fields` (crm and extra: their columns).
EXPORTABLE: Final = tuple(name for name in FIELD_NAMES if name != "status")
# As PostgreSQL's COPY ends a csv line (service/export_sql.py writes exports of now).
LINE_END: Final = "\n"
# An xlsx sheet holds 1,048,576 rows: a larger export goes on to a next sheet.
SHEET_ROWS: Final = 1_048_575

_encoder: Final = msgspec.json.Encoder()


class Columns(msgspec.Struct, frozen=True, kw_only=True):
    """The file's columns in order; `crm` and `extra` are the names found in the leads."""

    fields: tuple[str, ...]
    crm: list[str]
    extra: list[str]
    archived: bool

    def header(self) -> list[str]:
        return [
            "lead_id",
            "campaign",
            "status",
            *(["archived"] if self.archived else []),
            *self.fields,
            *self.crm,
            *(f"extra:{name}" for name in self.extra),
            "entry_at",
            "modified_at",
        ]


class Spool:
    """The leads as JSON lines in a temporary file, and the CRM and extra names they hold."""

    def __init__(self, handle: IO[bytes], campaigns: dict[int, str], fields: Sequence[str]) -> None:
        self.handle = handle
        self.campaigns = campaigns
        self.fields = tuple(fields)
        self.crm: set[str] = set()
        self.extra: set[str] = set()
        self.rows = 0

    def add(self, leads: Sequence[ExportLead], *, archived_column: bool) -> None:
        lines = []
        for item in leads:
            lead = item.lead
            self.crm.update(lead.crm)
            self.extra.update(lead.extra)
            record: dict[str, Any] = {
                "lead_id": lead.lead_id,
                "campaign": self.campaigns.get(lead.campaign_id, str(lead.campaign_id)),
                "status": lead.status,
            }
            if archived_column:
                record["archived"] = item.archived
            for name in self.fields:
                record[name] = getattr(lead, name)
            record["entry_at"] = lead.entry_at
            record["modified_at"] = lead.modified_at
            lines.append(_encoder.encode(record))
        self.handle.write(b"\n".join(lines) + b"\n" if lines else b"")
        self.rows += len(leads)

    def columns(self, *, archived: bool) -> Columns:
        fields = tuple(name for name in self.fields if name not in ("crm", "extra"))
        return Columns(
            fields=fields,
            crm=sorted(self.crm) if "crm" in self.fields else [],
            extra=sorted(self.extra) if "extra" in self.fields else [],
            archived=archived,
        )

    def records(self) -> Iterator[dict[str, Any]]:
        self.handle.flush()
        self.handle.seek(0)
        for line in self.handle:
            yield msgspec.json.decode(line)


def flat_cells(record: dict[str, Any], columns: Columns) -> list[object]:
    """A record's cells in the columns' order, escaped (`spreadsheet_cell`)."""
    crm = record.get("crm") or {}
    extra = record.get("extra") or {}
    get = record.get
    cell = spreadsheet_cell
    cells: list[object] = [record["lead_id"], cell(record["campaign"]), cell(record["status"])]
    if columns.archived:
        cells.append(cell(get("archived", False)))
    cells += [cell(get(name)) for name in columns.fields]
    if columns.crm:
        cells += [cell(crm.get(name)) for name in columns.crm]
    if columns.extra:
        cells += [cell(extra.get(name)) for name in columns.extra]
    cells += (record["entry_at"], record["modified_at"])
    return cells


def write_csv(records: Iterator[dict[str, Any]], columns: Columns, out: IO[bytes]) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
    writer = csv.writer(text, lineterminator=LINE_END)
    writer.writerow([spreadsheet_text(name) for name in columns.header()])
    writer.writerows(flat_cells(record, columns) for record in records)
    text.flush()
    text.detach()


def write_xlsx(records: Iterator[dict[str, Any]], columns: Columns, path: Path) -> None:
    """Row by row (constant_memory): XlsxWriter keeps one row in memory, the rest on disk.
    Cells are written as strings, never as formulas."""
    workbook = xlsxwriter.Workbook(
        str(path), {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
    )
    header = [spreadsheet_text(name) for name in columns.header()]
    sheet = None
    row = SHEET_ROWS
    for record in records:
        if row == SHEET_ROWS:
            sheet = workbook.add_worksheet()
            sheet.write_row(0, 0, header)
            row = 0
        row += 1
        assert sheet is not None  # noqa: S101 - set on the first record
        sheet.write_row(row, 0, [_xlsx_value(cell) for cell in flat_cells(record, columns)])
    if sheet is None:
        workbook.add_worksheet().write_row(0, 0, header)
    workbook.close()


def _xlsx_value(cell: object) -> object:
    # Cells come escaped from flat_cells: numbers stay numbers, None is a blank cell.
    return "" if cell is None else cell
