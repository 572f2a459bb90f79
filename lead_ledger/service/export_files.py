"""An export's file: its columns, and the csv, xlsx or jsonl written from its leads.

Two passes, each flat in memory whatever the number of leads: the leads are first spooled as
JSON lines to a temporary file while the CRM and extra field names are collected (a csv header
names every column before the first row, and the names are known only at the end); the file is
then written from the spool. jsonl is the spool itself: raw values, nested `crm` and `extra`.
csv and xlsx flatten them into `section:field` and `extra:<name>` columns, and escape cells a
spreadsheet would run as formulas (service/spreadsheet_cells.py).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, Final, Literal

import msgspec
import xlsxwriter

from lead_ledger.ledger.events import FIELD_NAMES
from lead_ledger.service.csv_lines import CsvLines
from lead_ledger.service.export_rows import ExportLead
from lead_ledger.service.reads import LeadView
from lead_ledger.service.spreadsheet_cells import (
    spreadsheet_cell,
    spreadsheet_row,
    spreadsheet_text,
)

ExportFormat = Literal["csv", "xlsx", "jsonl"]
CONTENT_TYPES: Final[dict[ExportFormat, str]] = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "jsonl": "application/x-ndjson",
}
# The canonical fields an export may name in `fields` (crm and extra: their columns).
EXPORTABLE: Final = tuple(name for name in FIELD_NAMES if name != "status")
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


class WrittenFile(msgspec.Struct, frozen=True):
    path: Path
    rows: int
    size: int


class Spool:
    """The leads spooled as JSON lines to a temporary file, and the CRM and extra names they
    hold. `raw` (jsonl): each line is the export's record itself, raw values with nested `crm`
    and `extra`. Otherwise (csv, xlsx) each line holds the row's cells, already escaped, in
    four parts: those before the CRM columns, the CRM and extra values by name, and the times:
    the second pass only puts the CRM and extra cells in their columns."""

    def __init__(
        self,
        handle: IO[bytes],
        campaigns: dict[int, str],
        fields: Sequence[str],
        *,
        archived_column: bool,
        raw: bool,
    ) -> None:
        self.handle = handle
        self.campaigns = campaigns
        self.fields = tuple(fields)
        self.archived_column = archived_column
        self.raw = raw
        self.crm: set[str] = set()
        self.extra: set[str] = set()
        self.rows = 0
        flat = [name for name in self.fields if name not in ("crm", "extra")]
        self._pick = _picker([_VIEW_INDEX[name] for name in flat])
        self._campaign_cells: dict[int, object] = {}

    def add(self, leads: Sequence[ExportLead]) -> None:
        lines = [self._record(item) if self.raw else self._cells(item) for item in leads]
        self.handle.write(b"\n".join(lines) + b"\n" if lines else b"")
        self.rows += len(leads)

    def _record(self, item: ExportLead) -> bytes:
        lead = item.lead
        self.crm.update(lead.crm)
        self.extra.update(lead.extra)
        record: dict[str, Any] = {
            "lead_id": lead.lead_id,
            "campaign": self.campaigns.get(lead.campaign_id, str(lead.campaign_id)),
            "status": lead.status,
        }
        if self.archived_column:
            record["archived"] = item.archived
        for name in self.fields:
            record[name] = getattr(lead, name)
        record["entry_at"] = lead.entry_at
        record["modified_at"] = lead.modified_at
        return _encoder.encode(record)

    def _cells(self, item: ExportLead) -> bytes:
        lead = item.lead
        cell = spreadsheet_cell
        campaign = self._campaign_cells.get(lead.campaign_id)
        if campaign is None:
            name = self.campaigns.get(lead.campaign_id, str(lead.campaign_id))
            campaign = self._campaign_cells[lead.campaign_id] = cell(name)
        head: list[object] = [lead.lead_id, campaign, cell(lead.status)]
        if self.archived_column:
            head.append(cell(item.archived))
        head += spreadsheet_row(self._pick(msgspec.structs.astuple(lead)))
        crm = extra = None
        if lead.crm:
            self.crm.update(lead.crm)
            crm = {name: cell(value) for name, value in lead.crm.items()}
        if lead.extra:
            self.extra.update(lead.extra)
            extra = {name: cell(value) for name, value in lead.extra.items()}
        return _encoder.encode((head, crm, extra, (lead.entry_at, lead.modified_at)))

    def columns(self) -> Columns:
        return file_columns(self.fields, self.crm, self.extra, archived=self.archived_column)

    def lines(self) -> Iterator[bytes]:
        """The spool's lines from the first (for `spooled_rows` or a jsonl file)."""
        self.handle.flush()
        self.handle.seek(0)
        return iter(self.handle)


# Where each field of a LeadView sits in `msgspec.structs.astuple(view)`.
_VIEW_INDEX: Final = {name: n for n, name in enumerate(LeadView.__struct_fields__)}


def _picker(indexes: list[int]) -> Callable[[tuple[Any, ...]], Sequence[Any]]:
    """The values at `indexes` of a tuple, as a sequence (itemgetter of one index gives the
    value itself)."""
    if len(indexes) > 1:
        return itemgetter(*indexes)
    if indexes:
        index = indexes[0]
        return lambda values: (values[index],)
    return lambda _: ()


def file_columns(
    fields: Sequence[str], crm: Iterable[str], extra: Iterable[str], *, archived: bool
) -> Columns:
    """The file's columns for the fields asked for and the CRM and extra names found."""
    return Columns(
        fields=tuple(name for name in fields if name not in ("crm", "extra")),
        crm=sorted(set(crm)) if "crm" in fields else [],
        extra=sorted(set(extra)) if "extra" in fields else [],
        archived=archived,
    )


_decode_cells: Final = msgspec.json.Decoder(
    tuple[list[Any], dict[str, Any] | None, dict[str, Any] | None, list[Any]]
).decode


def spooled_rows(lines: Iterable[bytes], columns: Columns) -> Iterator[list[object]]:
    """Each spooled row's cells in the columns' order (a spool of cells, not `raw`)."""
    crm_names, extra_names = columns.crm, columns.extra
    for line in lines:
        head, crm, extra, tail = _decode_cells(line)
        if crm_names:
            head += [None] * len(crm_names) if crm is None else [crm.get(n) for n in crm_names]
        if extra_names:
            head += (
                [None] * len(extra_names) if extra is None else [extra.get(n) for n in extra_names]
            )
        head += tail
        yield head


def write_csv(
    rows: Iterable[list[object]], columns: Columns, out: IO[bytes], *, header: bool = True
) -> None:
    """The rows as csv lines, after the header line unless told not to (an export worker
    writes its share's lines, service/export_parallel.py)."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
    writer = CsvLines(text)  # as PostgreSQL's COPY writes csv (service/export_sql.py)
    if header:
        writer.writerow([spreadsheet_text(name) for name in columns.header()])
    writer.writerows(rows)
    text.flush()
    text.detach()


# The most characters an xlsx cell holds and columns a sheet holds (Excel's specification;
# XlsxWriter cuts a longer string, or leaves out the cells past the last column, and says so
# only in the result of the write).
XLSX_CELL_CHARACTERS: Final = 32767
XLSX_COLUMNS: Final = 16384


class XlsxLimitError(ValueError):
    """What an xlsx file cannot hold (a value too long, too many columns): it would lose it."""


def write_xlsx(rows: Iterable[list[object]], columns: Columns, path: Path) -> None:
    """Row by row (constant_memory): XlsxWriter keeps one row in memory, the rest on disk.
    Cells are written as strings, never as formulas. XlsxLimitError, saying what, for more
    columns than a sheet holds or a value longer than a cell holds, rather than a file that
    silently leaves it out or cuts it."""
    header = [spreadsheet_text(name) for name in columns.header()]
    if len(header) > XLSX_COLUMNS:
        raise XlsxLimitError(
            f"the export has {len(header):,} columns, more than an xlsx sheet holds"
            f" ({XLSX_COLUMNS:,}): export as csv or jsonl, or choose fewer fields"
        )
    workbook = xlsxwriter.Workbook(
        str(path), {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
    )
    sheet = None
    row = SHEET_ROWS
    for cells in rows:
        if row == SHEET_ROWS:
            sheet = workbook.add_worksheet()
            sheet.write_row(0, 0, header)
            row = 0
        row += 1
        assert sheet is not None  # noqa: S101 - set on the first record
        if sheet.write_row(row, 0, [_xlsx_value(cell) for cell in cells]):
            workbook.close()
            raise XlsxLimitError(_too_long(cells, header))
    if sheet is None:
        workbook.add_worksheet().write_row(0, 0, header)
    workbook.close()


def _too_long(cells: list[object], header: list[str]) -> str:
    column = next(
        (
            name
            for name, cell in zip(header, cells, strict=False)
            if len(str(cell)) > XLSX_CELL_CHARACTERS
        ),
        "a column",
    )
    return (
        f"{column} holds more than {XLSX_CELL_CHARACTERS:,} characters in a lead, more than an"
        " xlsx cell holds: export as csv or jsonl"
    )


def _xlsx_value(cell: object) -> object:
    # Cells come escaped from the spool: numbers stay numbers, None is a blank cell.
    return "" if cell is None else cell
