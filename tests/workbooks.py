"""Hand-made xlsx files, written with zipfile as raw XML, for the bounds a hostile file tests."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from typing import Final

_XML: Final = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
_OFFICE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_RELS_NS: Final = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC_RELS: Final = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_MAIN_NS: Final = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_CONTENT_TYPES: Final = (
    f"{_XML}"
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels"'
    ' ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{_OFFICE}.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml"'
    f' ContentType="{_OFFICE}.worksheet+xml"/>'
    "</Types>"
)
_ROOT_RELS: Final = (
    f'{_XML}<Relationships xmlns="{_RELS_NS}">'
    f'<Relationship Id="rId1" Type="{_DOC_RELS}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK: Final = (
    f'{_XML}<workbook xmlns="{_MAIN_NS}" xmlns:r="{_DOC_RELS}">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS: Final = (
    f'{_XML}<Relationships xmlns="{_RELS_NS}">'
    f'<Relationship Id="rId1" Type="{_DOC_RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
    "</Relationships>"
)
SHEET_PART: Final = "xl/worksheets/sheet1.xml"


def cell(ref: str, text: str) -> str:
    """An inline-string cell at `ref`."""
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def sheet_xml(rows: Iterable[tuple[int, str]], *, dimension: str | None = None) -> bytes:
    """A worksheet: each (row number, its cells' XML), and the `<dimension>` it declares."""
    declared = f'<dimension ref="{dimension}"/>' if dimension else ""
    body = "".join(f'<row r="{number}">{cells}</row>' for number, cells in rows)
    return (
        f'{_XML}<worksheet xmlns="{_MAIN_NS}">{declared}<sheetData>{body}</sheetData></worksheet>'
    ).encode()


def workbook(sheet: bytes, *, extra: Iterable[tuple[str, bytes]] = ()) -> bytes:
    """A one-sheet workbook around `sheet`, every part deflated."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _ROOT_RELS)
        archive.writestr("xl/workbook.xml", _WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        archive.writestr(SHEET_PART, sheet)
        for name, data in extra:
            archive.writestr(name, data)
    return out.getvalue()


def phones(count: int) -> bytes:
    """A normal workbook: a PhoneNumber header and `count` numbers."""
    return workbook(phones_sheet(count))


def corner_bomb() -> bytes:
    """The issue's file: cells at A1 and XFD1048576, ~1.6 KB, a 17-billion-cell grid."""
    rows = [(1, cell("A1", "PhoneNumber")), (1_048_576, cell("XFD1048576", "x"))]
    return workbook(sheet_xml(rows, dimension="A1:XFD1048576"))


def lying_dimension() -> bytes:
    """A dimension of A1:A2 over cells that reach XFD1048576."""
    rows = [(1, cell("A1", "PhoneNumber")), (1_048_576, cell("XFD1048576", "x"))]
    return workbook(sheet_xml(rows, dimension="A1:A2"))


def inflating(size: int) -> bytes:
    """A valid small sheet padded with `size` bytes of white space, which deflate to ~1/1000."""
    sheet = sheet_xml([(1, cell("A1", "PhoneNumber")), (2, cell("A2", "9876543210"))])
    head, tail = sheet.split(b"<sheetData>")
    return workbook(head + b" " * size + b"<sheetData>" + tail)


def wide(columns: int, rows: int) -> bytes:
    """A header of `columns` names over `rows` rows with every one of those cells filled."""
    letters = [column_letters(n) for n in range(1, columns + 1)]
    header = "".join(cell(f"{c}1", "PhoneNumber" if c == "A" else f"c{c}") for c in letters)
    body = [(1, header)]
    body += [
        (number, "".join(cell(f"{c}{number}", "9876543210") for c in letters))
        for number in range(2, rows + 2)
    ]
    return workbook(sheet_xml(body, dimension=f"A1:{letters[-1]}{rows + 1}"))


def column_letters(number: int) -> str:
    """1 -> A, 40 -> AN, 16,384 -> XFD."""
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def with_declared_size(data: bytes, name: str, size: int) -> bytes:
    """The zip with `name`'s uncompressed size rewritten to `size` in both of its headers."""
    out = bytearray(data)
    encoded = name.encode()
    for magic, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = out.find(magic)
        while at >= 0:
            if out[at + name_at : at + name_at + len(encoded)] == encoded:
                out[at + size_at : at + size_at + 4] = size.to_bytes(4, "little")
            at = out.find(magic, at + 4)
    return bytes(out)


def phones_sheet(count: int) -> bytes:
    """The sheet of `phones(count)`."""
    rows = [(1, cell("A1", "PhoneNumber"))]
    rows += [(n, cell(f"A{n}", str(9_000_000_000 + n))) for n in range(2, count + 2)]
    return sheet_xml(rows, dimension=f"A1:A{count + 1}")
