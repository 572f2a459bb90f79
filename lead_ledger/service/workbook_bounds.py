"""Bounds on an xlsx workbook, checked on its zip and XML before any reader materialises a sheet.

A reader sizes its grid from the sheet's extent: a 1.6 KB file with cells at A1 and XFD1048576
asks for 17 billion cells, and a 1 MB file can inflate to gigabytes. Here nothing is built: the
central directory is read with `zipfile`, every part is inflated from its raw bytes as a stream
(the sizes a header declares can lie) and counted, and the XML is scanned with regexes, a chunk
at a time, for the declared dimension, the row and cell references and the number of cells. The
limits follow from the vendor's 50,000 records of at most 40 columns (docs/bulk-validation.md).

Pure code, stdlib only. What the scan cannot foresee, the parser's worker process and its
memory limit contain (service/file_parser.py).
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from operator import itemgetter
from typing import Final, Literal

# A header and 50,000 records; 40 columns each (seed 001).
MAX_SHEET_ROWS: Final = 50_001
MAX_SHEET_COLUMNS: Final = 40
# Rows x columns of the grid a reader builds, and the number of cell elements: the vendor's
# largest file. A sheet wider than 40 columns is read while its grid fits, so that the vendor's
# "Excess columns found at rows [..]" can name the rows.
MAX_CELLS: Final = MAX_SHEET_ROWS * MAX_SHEET_COLUMNS
# 64 bytes a cell: room for its reference, type, style and a value of ~20 characters. A part
# larger than the vendor's largest sheet is no upload of theirs; all parts together (a sheet
# and its shared strings): twice that.
MAX_PART_BYTES: Final = 64 * MAX_CELLS
MAX_TOTAL_BYTES: Final = 2 * MAX_PART_BYTES
# Excel writes a dozen parts, a few per sheet or image; thousands are no workbook.
MAX_ENTRIES: Final = 1_000
# A tag cut by a chunk's end is carried into the next chunk; a longer one is no sheet's.
MAX_TAG_BYTES: Final = 64 * 1024

Problem = Literal["too_large", "malformed"]

_CHUNK: Final = 1024 * 1024
_STORED: Final = zipfile.ZIP_STORED
_DEFLATED: Final = zipfile.ZIP_DEFLATED
_LOCAL_HEADER: Final = struct.Struct("<4s22xHH")
_LOCAL_MAGIC: Final = b"PK\x03\x04"
_END_MAGIC: Final = b"PK\x05\x06"
_END_RECORD: Final = struct.Struct("<4s4xHH")
_END_SEARCH: Final = 22 + 65_535  # the end record, and the longest comment it can carry

# Element names may carry any namespace prefix (`x:c`); readers match the local name.
_TAG: Final = re.compile(rb"<(?:[\w.-]+:)?(c|row|dimension)(?=[\s/>])")
_DIMENSION: Final = re.compile(rb"<(?:[\w.-]+:)?dimension\b[^>]*?\bref\s*=\s*[\"']([^\"']*)[\"']")
# Any `r` attribute anywhere, `r="C7"` of a cell or `r="7"` of a row, not only in the tag it
# belongs to: one hidden in another attribute's value can only overstate the extent. It starts
# with the literal `r` (the lookbehind comes after it), which the regex engine searches fast.
_REF: Final = re.compile(rb"r(?<=[^\w:.-]r)\s*=\s*[\"']\$?([A-Za-z]*)\$?([0-9]+)[\"']")
_RANGE_END: Final = re.compile(rb"\$?([A-Za-z]+)\$?([0-9]+)\s*$")


class TooLargeError(Exception):
    """Past a bound: the vendor's "Data limit exceeded"."""


class MalformedError(Exception):
    """No workbook a reader should be given: "Only excel files are allowed"."""


def check_workbook(data: bytes) -> Problem | None:
    """None when the zip and every sheet in it are within the bounds; otherwise why not."""
    try:
        _check(data)
    except TooLargeError:
        return "too_large"
    except (MalformedError, zipfile.BadZipFile, zlib.error, ValueError, EOFError):
        return "malformed"
    return None


def entry_count(data: bytes) -> int | None:
    """The entries the zip's end record declares, read before `zipfile` builds one object per
    entry (tens of bytes each in the file, hundreds in memory); None if there is no record."""
    at = data.rfind(_END_MAGIC, max(0, len(data) - _END_SEARCH))
    if at < 0 or at + _END_RECORD.size > len(data):
        return None
    on_disk: int
    total: int
    _, on_disk, total = _END_RECORD.unpack_from(data, at)
    # 0xFFFF defers to a zip64 record: treated as too many, as no workbook needs it.
    return max(on_disk, total)


def column_number(letters: bytes) -> int:
    """`A` -> 1, `AN` -> 40, `XFD` -> 16,384."""
    number = 0
    for letter in letters.upper():
        number = number * 26 + letter - ord("A") + 1
    return number


class _Extent:
    """What one part's scan has seen so far: the furthest references and the elements."""

    def __init__(self) -> None:
        self.last_row = 0
        self.last_column = 0
        self.rows = 0
        self.row_refs = 0
        self.cells = 0
        self.cell_refs = 0

    def check(self) -> None:
        """A row or cell without a reference follows the one before it: each is counted as
        one further than the furthest reference, which can only overstate the extent."""
        rows = self.last_row + max(0, self.rows - self.row_refs)
        columns = self.last_column + max(0, self.cells - self.cell_refs)
        if rows > MAX_SHEET_ROWS or rows * columns > MAX_CELLS or self.cells > MAX_CELLS:
            raise TooLargeError


def _check(data: bytes) -> None:
    count = entry_count(data)
    if count is None:
        raise MalformedError
    if count > MAX_ENTRIES:
        raise TooLargeError
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise TooLargeError
    names = [info.filename for info in infos]
    if len(set(names)) != len(names) or any(_unsafe(name) for name in names):
        raise MalformedError
    if sum(info.file_size for info in infos) > MAX_TOTAL_BYTES:
        raise TooLargeError
    inflated = 0
    for info in infos:
        if info.file_size > MAX_PART_BYTES:
            raise TooLargeError
        size = sum(_scanned(_inflate(data, info), _Extent()))
        if size != info.file_size:
            raise MalformedError  # the header lies about the part
        inflated += size
        if inflated > MAX_TOTAL_BYTES:
            raise TooLargeError


def _unsafe(name: str) -> bool:
    """An absolute, parent-relative or backslashed name, or a zip inside the zip."""
    parts = name.split("/")
    return (
        name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or ".." in parts
        or name.lower().endswith((".zip", ".xlsx"))
    )


def _inflate(data: bytes, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """The part's bytes, from its raw data a chunk at a time, whatever the header says."""
    if info.flag_bits & 0x1:
        raise MalformedError  # encrypted
    magic, name_length, extra_length = _LOCAL_HEADER.unpack_from(data, info.header_offset)
    if magic != _LOCAL_MAGIC:
        raise MalformedError
    start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    raw = memoryview(data)[start : start + info.compress_size]
    if len(raw) != info.compress_size:
        raise MalformedError
    if info.compress_type == _STORED:
        return (bytes(raw[at : at + _CHUNK]) for at in range(0, len(raw), _CHUNK))
    if info.compress_type == _DEFLATED:
        return _inflated(raw)
    raise MalformedError  # Excel writes deflate only


def _inflated(raw: memoryview) -> Iterator[bytes]:
    """Deflated data inflated a chunk at a time, stopped once it passes MAX_PART_BYTES."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    produced = 0
    for at in range(0, len(raw), _CHUNK):
        pending = raw[at : at + _CHUNK]
        while pending and not inflater.eof:
            # max_length bounds each step's output, so a bomb never inflates at once.
            out = inflater.decompress(pending, _CHUNK)
            pending = memoryview(inflater.unconsumed_tail)
            produced += len(out)
            if produced > MAX_PART_BYTES:
                raise TooLargeError
            yield out


def _scanned(chunks: Iterator[bytes], extent: _Extent) -> Iterator[int]:
    """Scan each chunk's tags, carrying a tag cut at its end into the next; yield sizes."""
    carry = b""
    for chunk in chunks:
        buffer = carry + chunk
        cut = buffer.rfind(b"<")
        if cut < 0 or buffer.find(b">", cut) >= 0:
            whole, carry = buffer, b""
        else:
            whole, carry = buffer[:cut], buffer[cut:]
            if len(carry) > MAX_TAG_BYTES:
                raise TooLargeError
        _scan(whole, extent)
        yield len(chunk)
    _scan(carry, extent)


def _scan(text: bytes, extent: _Extent) -> None:
    tags = _TAG.findall(text)
    if b"dimension" in tags:
        for declared in _DIMENSION.findall(text):
            end = _RANGE_END.search(declared)
            if end is not None:
                extent.last_row = max(extent.last_row, int(end.group(2)))
                extent.last_column = max(extent.last_column, column_number(end.group(1)))
    refs = _REF.findall(text)
    letters = list(map(itemgetter(0), refs))
    row_refs = letters.count(b"")
    extent.cells += tags.count(b"c")
    extent.rows += tags.count(b"row")
    extent.cell_refs += len(refs) - row_refs
    extent.row_refs += row_refs
    # Distinct values first (C loops), so that only a few are converted in Python.
    extent.last_row = max([extent.last_row, *map(int, set(map(itemgetter(1), refs)))])
    extent.last_column = max([extent.last_column, *map(column_number, set(letters))])
    extent.check()
