"""Ozonetel's bulk file upload: read a csv or xlsx file and validate it the way CloudAgent does.

Pure code, no I/O: the HTTP layer answers "File is mandatory" for a missing file part and calls
`parse_upload` with the bytes of the file. A file is refused as a whole with the vendor's exact
message (seed 001); docs/bulk-validation.md lists the rules, their order and every decision.
"""

from __future__ import annotations

import csv
import gc
import io
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time
from typing import Final, Literal

import msgspec
from python_calamine import CalamineError, CalamineWorkbook

from lead_ledger.ledger.events import Assignment, ExtraValue, LeadFields
from lead_ledger.service.workbook_bounds import (
    MAX_CELLS,
    MAX_ENTRIES,
    MAX_SHEET_ROWS,
    check_workbook,
    entry_count,
)

FileFormat = Literal["csv", "xlsx"]

MAX_RECORDS: Final = 50_000
MAX_COLUMNS: Final = 40
MAX_NAME_LENGTH: Final = 100

NOT_EXCEL: Final = "Only excel files are allowed"
EMPTY_FILE: Final = "Uploaded xlsx File Should Not Be Empty"  # the vendor's words, also for csv
NO_PHONE_COLUMN: Final = "Map file doesnt contain phoneNumber"
NO_AGENT_COLUMN: Final = "Map file doesnt contain Agent Id"
NO_SKILL_COLUMN: Final = "Skillwise campaign doesn't have skill as column"
DATA_LIMIT: Final = "Data limit exceeded"

# The vendor's regex `[\W&&[^ \(\)\[\]\.\+\-,]]` names the punctuation a number may carry; the
# brief narrows `\W` to digits, so letters are refused too. Digits are counted separately.
_PHONE_CHARACTERS: Final = re.compile(r"[0-9 ()\[\].+\-,]*")
_NON_DIGITS: Final = re.compile(r"[^0-9]")
_MIN_DIGITS: Final = 3
_MAX_DIGITS: Final = 16

# Both zip members must be there: a docx or a plain zip is a zip but not a workbook.
_XLSX_MEMBERS: Final = frozenset({"[Content_Types].xml", "xl/workbook.xml"})
_ZIP_MAGIC: Final = b"PK\x03\x04"
_UTF8_BOM: Final = b"\xef\xbb\xbf"

_Role = Literal["phone", "agent", "skill", "name"]
# Header names compared lower-case without "_" and spaces: phone_number == PhoneNumber.
_ROLES: Final[dict[str, _Role]] = {
    "phonenumber": "phone",
    "agentid": "agent",
    "skill": "skill",
    "name": "name",
}


class UploadRows(msgspec.Struct, frozen=True, kw_only=True):
    """An accepted file: one lead per non-blank data row, in file order."""

    rows: list[LeadFields]
    format: FileFormat


class UploadPayload(msgspec.Struct, frozen=True, kw_only=True):
    """A job's payload: the file's rows, already parsed and validated."""

    rows: list[LeadFields]


class UploadRefusal(msgspec.Struct, frozen=True):
    """The whole file is refused; `message` is the vendor's text for {"status": "error"}."""

    message: str


def parse_upload(
    data: bytes,
    *,
    campaign_name: str,
    assignment: Assignment,
    agent_ids: set[str],
    skills: set[str],
) -> UploadRows | UploadRefusal:
    """Sniff the format from the content, read the first sheet, validate, map to leads."""
    with _collector_paused():
        return _parse(data, campaign_name, assignment, agent_ids, skills)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Reading 50,000 rows allocates ~1M containers that all stay alive: the cyclic collector
    would rescan them again and again (it doubled the time) and could free none of them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse(
    data: bytes, campaign_name: str, assignment: Assignment, agent_ids: set[str], skills: set[str]
) -> UploadRows | UploadRefusal:
    file_format = sniff_format(data)
    if file_format is None:
        return UploadRefusal(NOT_EXCEL)
    table = _read_xlsx(data) if file_format == "xlsx" else _read_csv(data)
    if isinstance(table, UploadRefusal):
        return table
    return validate_table(
        table,
        file_format,
        campaign_name=campaign_name,
        assignment=assignment,
        agent_ids=agent_ids,
        skills=skills,
    )


def sniff_format(data: bytes) -> FileFormat | None:
    """The format by content, never by file name: xlsx workbook, UTF-8 text, or neither."""
    if data.startswith(_ZIP_MAGIC):
        entries = entry_count(data)
        if entries is not None and entries > MAX_ENTRIES:
            # Not opened: zipfile would build an object per entry. check_workbook refuses it.
            return "xlsx"
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, ValueError):
            return None
        return "xlsx" if names >= _XLSX_MEMBERS else None
    if b"\x00" in data:
        return None  # binary (PDF streams, images, xls, UTF-16): not a csv
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "csv"


def _read_csv(data: bytes) -> list[list[str]] | UploadRefusal:
    """The rows, within the bounds an xlsx sheet has (docs/bulk-validation.md, "Size bounds")."""
    # A row is built whole before it can be counted: no row may have more fields than the
    # largest file has cells, which commas (also those inside quotes) bound from above.
    if data.count(b",") > MAX_CELLS:
        return UploadRefusal(DATA_LIMIT)
    text = data.removeprefix(_UTF8_BOM).decode("utf-8")
    rows: list[list[str]] = []
    width = 0
    try:
        # newline="" lets the csv module see CRLF and quoted line breaks itself.
        for row in csv.reader(io.StringIO(text, newline="")):
            rows.append(row)
            width = max(width, len(row))
            if len(rows) > MAX_SHEET_ROWS or len(rows) * width > MAX_CELLS:
                return UploadRefusal(DATA_LIMIT)
    except csv.Error:
        # e.g. a field over csv.field_size_limit(): text, but no table
        return UploadRefusal(NOT_EXCEL)
    return rows


def _read_xlsx(data: bytes) -> list[list[str]] | UploadRefusal:
    # Bounded before calamine sees it: its grid is as large as the sheet says it is.
    match check_workbook(data):
        case "too_large":
            return UploadRefusal(DATA_LIMIT)
        case "malformed":
            return UploadRefusal(NOT_EXCEL)
        case None:
            pass
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
        if not workbook.sheet_names:
            return UploadRefusal(NOT_EXCEL)
        # skip_empty_area=False keeps row numbers as the user sees them in the sheet.
        cells = workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except (CalamineError, OSError, ValueError):
        # A zip that claims to be a workbook but cannot be read is no excel file either.
        return UploadRefusal(NOT_EXCEL)
    return [[_cell_text(cell) for cell in row] for row in cells]


def _cell_text(cell: object) -> str:
    """A cell as the text a csv would carry: 9876543210.0 (numbers are floats) -> 9876543210."""
    if isinstance(cell, str):
        return cell
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"  # how a spreadsheet shows a boolean
    if isinstance(cell, float):
        return str(int(cell)) if cell.is_integer() else repr(cell)
    if isinstance(cell, datetime | date | time):
        return cell.isoformat(sep=" ") if isinstance(cell, datetime) else cell.isoformat()
    return "" if cell is None else str(cell)


class _Columns(msgspec.Struct, frozen=True):
    """Where each role sits in the header; other named columns by index."""

    phone: int | None
    agent: int | None
    skill: int | None
    name: int | None
    extra: list[tuple[int, str]]


def _columns(header: Sequence[str]) -> _Columns:
    found: dict[_Role, int] = {}
    extra: list[tuple[int, str]] = []
    seen_extra: set[str] = set()
    for index, raw in enumerate(header):
        title = raw.strip()
        if not title:
            continue  # a column without a header has no name to store its values under
        role = _ROLES.get(title.lower().replace("_", "").replace(" ", ""))
        if role is not None:
            found.setdefault(role, index)  # the first of repeated columns wins
        elif title not in seen_extra:
            seen_extra.add(title)
            extra.append((index, title))
    return _Columns(
        phone=found.get("phone"),
        agent=found.get("agent"),
        skill=found.get("skill"),
        name=found.get("name"),
        extra=extra,
    )


def _row_list(rows: Iterable[int]) -> str:
    # The seed writes "[1,2,3,..,n]": no spaces, unlike Java's List.toString().
    return "[" + ",".join(map(str, rows)) + "]"


def validate_table(
    table: Sequence[Sequence[str]],
    file_format: FileFormat,
    *,
    campaign_name: str,
    assignment: Assignment,
    agent_ids: set[str],
    skills: set[str],
) -> UploadRows | UploadRefusal:
    """The checks in the documented order; row numbers are 1-based data rows after the header."""
    # The header is the first row with any text; blank rows never count as records.
    start = next((i for i, row in enumerate(table) if "".join(row).strip()), None)
    if start is None:
        return UploadRefusal(EMPTY_FILE)
    columns = _columns(table[start])
    data = [
        (number, row)
        for number, row in enumerate(table[start + 1 :], start=1)
        if "".join(row).strip()
    ]
    problem = _file_problem(columns, data, assignment, campaign_name)
    if problem is not None:
        return UploadRefusal(problem)
    return _map_rows(
        columns,
        data,
        file_format,
        campaign_name=campaign_name,
        agent_ids=agent_ids if assignment == "agentwise" else None,
        skills=skills if assignment == "skillwise" else None,
    )


def _file_problem(  # noqa: PLR0911 - one return per vendor message, in their order
    columns: _Columns,
    data: list[tuple[int, Sequence[str]]],
    assignment: Assignment,
    campaign_name: str,
) -> str | None:
    """The checks that need no per-row parsing, cheapest and most basic first."""
    if not data:
        return EMPTY_FILE
    if columns.phone is None:
        return NO_PHONE_COLUMN
    if assignment == "agentwise" and columns.agent is None:
        return NO_AGENT_COLUMN
    if assignment == "skillwise" and columns.skill is None:
        return NO_SKILL_COLUMN
    # A row is too wide when more than 40 of its cells hold something (trailing ",,," is not).
    excess = [n for n, row in data if len(row) > MAX_COLUMNS and _filled(row) > MAX_COLUMNS]
    if excess:
        return f"Excess columns found at rows {_row_list(excess)} for campaign {campaign_name}"
    if len(data) > MAX_RECORDS:
        return DATA_LIMIT
    return None


def _map_rows(
    columns: _Columns,
    data: list[tuple[int, Sequence[str]]],
    file_format: FileFormat,
    *,
    campaign_name: str,
    agent_ids: set[str] | None,
    skills: set[str] | None,
) -> UploadRows | UploadRefusal:
    """One pass: map every row and note every bad one, then report the first failing check."""
    bad_phones: list[int] = []
    bad_agents: list[int] = []
    bad_skills: list[int] = []
    long_names: list[int] = []
    leads: list[LeadFields] = []
    # Rows are padded so that every role has an index; a missing column reads the blank pad.
    known = [
        i for i in (columns.phone, columns.agent, columns.skill, columns.name) if i is not None
    ]
    blank = max([*known, *(i for i, _ in columns.extra), 0]) + 1
    pad = [""] * (blank + 1)
    phone_at, name_at = _at(columns.phone, blank), _at(columns.name, blank)
    agent_at, skill_at = _at(columns.agent, blank), _at(columns.skill, blank)
    phone_chars = _PHONE_CHARACTERS.fullmatch
    non_digits = _NON_DIGITS.sub
    for number, given in data:
        row = _fit(given, blank, pad)
        phone = row[phone_at].strip()
        if not (phone_chars(phone) and _MIN_DIGITS <= len(non_digits("", phone)) <= _MAX_DIGITS):
            bad_phones.append(number)
        agent = row[agent_at].strip()
        if agent_ids is not None and agent not in agent_ids:
            bad_agents.append(number)
        skill = row[skill_at].strip()
        if skills is not None and skill not in skills:
            bad_skills.append(number)
        name = row[name_at].strip()
        if len(name) > MAX_NAME_LENGTH:
            long_names.append(number)
        extra: dict[str, ExtraValue] = {}
        for index, title in columns.extra:
            value = row[index].strip()
            if value:
                extra[title] = value
        leads.append(
            LeadFields(
                phone_numbers=[phone],
                name=name or None,
                agent=agent or None,
                skill=skill or None,
                extra=extra,
            )
        )
    # (rows, text before the list, text after it): the campaign name is never a format string.
    suffix = f" for campaign {campaign_name}"
    failures = (
        (bad_phones, "Invalid phone no.s found at rows ", suffix),
        (bad_agents, "Invalid AgentIds found at rows ", suffix),
        (bad_skills, "Invalid Skill names found at rows ", suffix),
        (long_names, f"Rows exceeded allowed name column size({MAX_NAME_LENGTH}) : ", ""),
    )
    for rows, before, after in failures:
        if rows:
            return UploadRefusal(before + _row_list(rows) + after)
    return UploadRows(rows=leads, format=file_format)


def _fit(row: Sequence[str], blank: int, pad: list[str]) -> Sequence[str]:
    """The row with a blank cell at index `blank` (what a missing column reads)."""
    size = len(row)
    if size <= blank:
        return [*row, *pad[size:]]
    if row[blank]:
        return [*row[:blank], ""]  # a cell beyond every named column is no one's value
    return row


def _at(index: int | None, blank: int) -> int:
    return blank if index is None else index


def _filled(row: Sequence[str]) -> int:
    return sum(1 for cell in row if cell.strip())
