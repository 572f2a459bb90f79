"""Hostile workbooks and csv files are refused before they are read (issue 11, item 1)."""

from __future__ import annotations

import io
import time
import warnings
import zipfile

from lead_ledger.service.ozonetel_file import UploadRefusal, UploadRows, parse_upload
from lead_ledger.service.workbook_bounds import (
    MAX_CELLS,
    MAX_ENTRIES,
    MAX_PART_BYTES,
    check_workbook,
    column_number,
)
from tests import workbooks
from tests.workbooks import SHEET_PART, cell, sheet_xml, workbook

CAMPAIGN = "sales"
DATA_LIMIT = "Data limit exceeded"
NOT_EXCEL = "Only excel files are allowed"


def parse(data: bytes) -> UploadRows | UploadRefusal:
    return parse_upload(
        data, campaign_name=CAMPAIGN, assignment="none", agent_ids=set(), skills=set()
    )


def refusal(data: bytes) -> str:
    result = parse(data)
    assert isinstance(result, UploadRefusal), result
    return result.message


def test_corner_bomb_is_refused_before_it_is_read() -> None:
    """The issue's 1.6 KB file, cells at A1 and XFD1048576: "Data limit exceeded" at once."""
    data = workbooks.corner_bomb()
    assert len(data) < 2_000
    started = time.monotonic()
    assert refusal(data) == DATA_LIMIT
    assert time.monotonic() - started < 1.0


def test_declared_dimension_alone_is_bounded() -> None:
    """A sheet whose cells are few but whose dimension claims A1:XFD1048576 is refused."""
    sheet = sheet_xml([(1, cell("A1", "PhoneNumber"))], dimension="A1:XFD1048576")
    assert check_workbook(workbook(sheet)) == "too_large"


def test_lying_dimension_does_not_hide_the_cells() -> None:
    """A dimension of A1:A2 over a cell at XFD1048576: the cells' references count."""
    assert refusal(workbooks.lying_dimension()) == DATA_LIMIT


def test_cells_past_the_grid_of_the_vendors_largest_file() -> None:
    """A1 and XFD50001: 50,001 rows, but 16,384 columns wide: over 50,001 x 40 cells."""
    rows = [(1, cell("A1", "PhoneNumber")), (50_001, cell("XFD50001", "x"))]
    assert refusal(workbook(sheet_xml(rows))) == DATA_LIMIT


def test_namespace_prefixed_cells_are_seen() -> None:
    """`<x:c r="XFD1048576">`: a prefix hides nothing from the scan."""
    sheet = sheet_xml([(1, cell("A1", "PhoneNumber"))]).replace(
        b"</sheetData>",
        b'<x:row r="1048576"><x:c r="XFD1048576"><x:v>1</x:v></x:c></x:row></sheetData>',
    )
    assert check_workbook(workbook(sheet)) == "too_large"


def test_rows_without_references_are_counted() -> None:
    """Rows without `r` follow one another: 50,002 of them are past the bound."""
    rows = b"<row><c><v>9876543210</v></c></row>" * 50_002
    sheet = sheet_xml([]).replace(
        b"<sheetData></sheetData>", b"<sheetData>" + rows + b"</sheetData>"
    )
    assert check_workbook(workbook(sheet)) == "too_large"


def test_too_many_cells_at_one_reference() -> None:
    """More cell elements than the largest file has cells, all at A1, are refused."""
    cells = b'<c r="A1"><v>1</v></c>' * (MAX_CELLS + 1)
    sheet = sheet_xml([]).replace(
        b"<sheetData></sheetData>", b'<sheetData><row r="1">' + cells + b"</row></sheetData>"
    )
    assert check_workbook(workbook(sheet)) == "too_large"


def test_sheet_inflating_past_the_part_bound() -> None:
    """A sheet padded to inflate past MAX_PART_BYTES is refused; the file is ~0.1% of that."""
    data = workbooks.inflating(MAX_PART_BYTES + 1)
    assert len(data) < MAX_PART_BYTES // 500
    assert refusal(data) == DATA_LIMIT


def test_header_understating_the_inflated_size() -> None:
    """A header that says 1,000 bytes does not stop the count: inflating stops at the bound."""
    data = workbooks.with_declared_size(workbooks.inflating(MAX_PART_BYTES + 1), SHEET_PART, 1_000)
    assert check_workbook(data) == "too_large"


def test_header_misstating_a_small_size() -> None:
    """A part whose data inflates to another size than its header says is no workbook."""
    data = workbooks.with_declared_size(workbooks.phones(3), SHEET_PART, 10)
    assert check_workbook(data) == "malformed"


def test_too_many_entries() -> None:
    """A workbook of more than MAX_ENTRIES parts is refused before zipfile lists them."""
    extra = [(f"xl/media/pad{i}.xml", b"<a/>") for i in range(MAX_ENTRIES)]
    assert refusal(workbook(workbooks.sheet_xml([(1, cell("A1", "x"))]), extra=extra)) == (
        DATA_LIMIT
    )


def test_duplicate_part_names() -> None:
    """Two parts of one name (which one would a reader take?) make no workbook."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile's "Duplicate name"
        data = workbook(workbooks.phones_sheet(3), extra=[(SHEET_PART, workbooks.phones_sheet(5))])
    assert refusal(data) == NOT_EXCEL


def test_parent_relative_and_nested_names() -> None:
    """A `..` part name or a zip inside the workbook is refused."""
    for name in ("../evil.xml", "xl/embeddings/inner.zip"):
        data = workbook(workbooks.phones_sheet(3), extra=[(name, b"<a/>")])
        assert refusal(data) == NOT_EXCEL, name


def test_vendor_sized_sheet_is_accepted() -> None:
    """50,000 numbers under a header (50,001 rows) pass the bounds and are read."""
    result = parse(workbooks.phones(50_000))
    assert isinstance(result, UploadRows), result
    assert len(result.rows) == 50_000


def test_one_row_past_the_vendors_limit() -> None:
    """50,001 numbers under a header: "Data limit exceeded", from the bounds."""
    assert check_workbook(workbooks.phones(50_001)) == "too_large"
    assert refusal(workbooks.phones(50_001)) == DATA_LIMIT


def test_wide_rows_within_the_bounds_name_their_rows() -> None:
    """41 filled columns in a small sheet: read, and the vendor's excess-columns message."""
    assert check_workbook(workbooks.wide(41, 3)) is None
    assert refusal(workbooks.wide(41, 3)) == (
        f"Excess columns found at rows [1,2,3] for campaign {CAMPAIGN}"
    )


def test_column_numbers() -> None:
    """Column letters count in base 26 without a zero."""
    assert [column_number(b"A"), column_number(b"AN"), column_number(b"xfd")] == [1, 40, 16_384]


def test_csv_of_blank_lines_is_bounded() -> None:
    """2,000,000 blank lines after a header: "Data limit exceeded", not a 2M-row table."""
    assert refusal(b"PhoneNumber\n" + b"\n" * 2_000_000) == DATA_LIMIT


def test_csv_row_of_too_many_fields() -> None:
    """One row of more fields than the largest file has cells is refused before it is built."""
    assert refusal(b"PhoneNumber\n9876543210" + b"," * (MAX_CELLS + 1)) == DATA_LIMIT


def test_csv_grid_past_the_bound() -> None:
    """50,000 rows of 41 fields (the 41st blank) exceed 50,001 x 40 cells."""
    data = b"PhoneNumber\n" + b"9876543210" + b"," * 40 + b"\n"
    assert refusal(b"PhoneNumber\n" + (b"9876543210" + b"," * 40 + b"\n") * 50_000) == DATA_LIMIT
    assert isinstance(parse(data), UploadRows)


def test_zip_that_is_no_zip() -> None:
    """The zip signature with nothing behind it is refused, as before."""
    assert refusal(b"PK\x03\x04" + b"\x00" * 100) == NOT_EXCEL
    with zipfile.ZipFile(buffer := io.BytesIO(), "w") as archive:
        archive.writestr("a.txt", "x")
    assert refusal(buffer.getvalue()) == NOT_EXCEL
