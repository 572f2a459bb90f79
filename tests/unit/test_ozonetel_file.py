"""Ozonetel's bulk file: format by content, the vendor's messages in order, leads out (seed 001)."""

from __future__ import annotations

import csv
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import openpyxl
import pytest

from lead_ledger.ledger.events import Assignment, LeadFields
from lead_ledger.service.ozonetel_file import UploadRefusal, UploadRows, parse_upload

CAMPAIGN = "Sales_Q3"
AGENTS = {"agent1", "agent2"}
SKILLS = {"English", "Hindi"}

Cell = str | int | float | None


def write_csv(
    path: Path, rows: Sequence[Sequence[Cell]], *, bom: bool = False, crlf: bool = False
) -> bytes:
    """A real csv file written by the csv module; its bytes."""
    encoding = "utf-8-sig" if bom else "utf-8"
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle, lineterminator="\r\n" if crlf else "\n").writerows(rows)
    return path.read_bytes()


def write_xlsx(path: Path, rows: Sequence[Sequence[Cell]]) -> bytes:
    """A real workbook written by openpyxl; its bytes."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(list(row))
    workbook.save(path)
    return path.read_bytes()


def parse(
    data: bytes,
    assignment: Assignment = "none",
    *,
    agents: set[str] = AGENTS,
    skills: set[str] = SKILLS,
) -> UploadRows | UploadRefusal:
    return parse_upload(
        data, campaign_name=CAMPAIGN, assignment=assignment, agent_ids=agents, skills=skills
    )


def refusal(result: UploadRows | UploadRefusal) -> str:
    assert isinstance(result, UploadRefusal), result
    return result.message


def accepted(result: UploadRows | UploadRefusal) -> UploadRows:
    assert isinstance(result, UploadRows), result
    return result


# --- formats ----------------------------------------------------------------------------------


def test_csv_rows_become_leads(tmp_path: Path) -> None:
    """A csv's phone, name, agent, skill and other columns map onto LeadFields."""
    data = write_csv(
        tmp_path / "a.csv",
        [
            ["PhoneNumber", "Name", "AgentId", "Skill", "City", "Loan Amount"],
            [" 9876543210 ", "Asha", "agent1", "English", "Pune", ""],
            ["+91 (98765) 43211", "", "", "", "", "5000"],
        ],
    )
    result = accepted(parse(data))
    assert result.format == "csv"
    assert result.rows == [
        LeadFields(
            phone_numbers=["9876543210"],
            name="Asha",
            agent="agent1",
            skill="English",
            extra={"City": "Pune"},
        ),
        LeadFields(phone_numbers=["+91 (98765) 43211"], extra={"Loan Amount": "5000"}),
    ]


def test_csv_with_bom_and_crlf(tmp_path: Path) -> None:
    """A UTF-8 BOM does not spoil the first header; CRLF line ends are read as rows."""
    data = write_csv(
        tmp_path / "a.csv",
        [["phoneNumber", "Name"], ["9876543210", "Ravi"], ["9876543211", "Éva"]],
        bom=True,
        crlf=True,
    )
    assert data.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in data
    result = accepted(parse(data))
    assert [(r.phone_numbers, r.name) for r in result.rows] == [
        (["9876543210"], "Ravi"),
        (["9876543211"], "Éva"),
    ]


@pytest.mark.parametrize("header", ["PhoneNumber", "phoneNumber", "phone_number", "PHONE NUMBER"])
def test_phone_header_spellings(tmp_path: Path, header: str) -> None:
    """The phone column is found case-insensitively, ignoring "_" and spaces."""
    data = write_csv(tmp_path / "a.csv", [[header], ["9876543210"]])
    assert accepted(parse(data)).rows[0].phone_numbers == ["9876543210"]


def test_agent_header_spelling_agent_id(tmp_path: Path) -> None:
    """agent_id is the AgentId column."""
    data = write_csv(tmp_path / "a.csv", [["phone_number", "agent_id"], ["9876543210", "agent2"]])
    assert accepted(parse(data, "agentwise")).rows[0].agent == "agent2"


def test_xlsx_numbers_become_digits(tmp_path: Path) -> None:
    """Numeric cells (floats in calamine) come out as "9876543210", not "9876543210.0"."""
    data = write_xlsx(
        tmp_path / "a.xlsx",
        [["PhoneNumber", "Name", "Score", "Ratio"], [9876543210, "Asha", 42, 0.5]],
    )
    result = accepted(parse(data))
    assert result.format == "xlsx"
    assert result.rows == [
        LeadFields(phone_numbers=["9876543210"], name="Asha", extra={"Score": "42", "Ratio": "0.5"})
    ]


def test_csv_name_with_xlsx_content(tmp_path: Path) -> None:
    """A workbook named .csv is read as a workbook: content decides."""
    data = write_xlsx(tmp_path / "a.xlsx", [["PhoneNumber"], [9876543210]])
    (tmp_path / "wrong.csv").write_bytes(data)
    assert accepted(parse((tmp_path / "wrong.csv").read_bytes())).format == "xlsx"


def test_xlsx_name_with_csv_content(tmp_path: Path) -> None:
    """A csv named .xlsx is read as csv: content decides."""
    data = write_csv(tmp_path / "wrong.xlsx", [["PhoneNumber"], ["9876543210"]])
    assert accepted(parse(data)).format == "csv"


def _zip_without_workbook(path: Path) -> bytes:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "PhoneNumber\n9876543210\n")
    return path.read_bytes()


_PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\nstream\n\x00\x01\xff\nendstream\n%%EOF"
_PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"


@pytest.mark.parametrize("kind", ["pdf", "png", "zip", "latin1", "broken-xlsx", "huge-field"])
def test_not_excel(tmp_path: Path, kind: str) -> None:
    """PDF, PNG, a plain zip, non-UTF-8 text, a broken workbook, an unreadable csv: refused."""
    path = tmp_path / "upload.xlsx"
    if kind == "pdf":
        path.write_bytes(_PDF)
    elif kind == "png":
        path.write_bytes(_PNG)
    elif kind == "zip":
        _zip_without_workbook(path)
    elif kind == "huge-field":
        path.write_text("PhoneNumber,Name\n9876543210," + "x" * 200_000 + "\n", encoding="utf-8")
    elif kind == "latin1":
        path.write_bytes("PhoneNumber,Name\n9876543210,Jos\xe9\n".encode("latin-1"))
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("[Content_Types].xml", "not xml")
            archive.writestr("xl/workbook.xml", "<broken")
    assert refusal(parse(path.read_bytes())) == "Only excel files are allowed"


# --- messages, in order -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rows",
    [[], [["PhoneNumber", "Name"]], [["PhoneNumber"], ["", ""], [" "]]],
    ids=["nothing", "header-only", "blank-rows"],
)
def test_empty_file(tmp_path: Path, rows: list[list[Cell]]) -> None:
    """No data rows: the vendor's xlsx wording, also for csv."""
    data = write_csv(tmp_path / "a.csv", rows)
    assert refusal(parse(data)) == "Uploaded xlsx File Should Not Be Empty"


def test_empty_xlsx(tmp_path: Path) -> None:
    """A workbook with only a header is empty."""
    data = write_xlsx(tmp_path / "a.xlsx", [["PhoneNumber"]])
    assert refusal(parse(data)) == "Uploaded xlsx File Should Not Be Empty"


def test_no_phone_column(tmp_path: Path) -> None:
    """Without a phone column the file is refused (before the agent column check)."""
    data = write_csv(tmp_path / "a.csv", [["Mobile", "Name"], ["9876543210", "A"]])
    assert refusal(parse(data, "agentwise")) == "Map file doesnt contain phoneNumber"


def test_agentwise_without_agent_column(tmp_path: Path) -> None:
    """An agentwise campaign needs an AgentId column."""
    data = write_csv(tmp_path / "a.csv", [["PhoneNumber", "Skill"], ["9876543210", "English"]])
    assert refusal(parse(data, "agentwise")) == "Map file doesnt contain Agent Id"


def test_skillwise_without_skill_column(tmp_path: Path) -> None:
    """A skillwise campaign needs a Skill column."""
    data = write_csv(tmp_path / "a.csv", [["PhoneNumber", "AgentId"], ["9876543210", "agent1"]])
    assert refusal(parse(data, "skillwise")) == "Skillwise campaign doesn't have skill as column"


def test_no_agent_column_is_fine_without_assignment(tmp_path: Path) -> None:
    """Agent and skill columns are optional when the campaign assigns neither."""
    data = write_csv(tmp_path / "a.csv", [["PhoneNumber"], ["9876543210"]])
    assert accepted(parse(data, "none")).rows[0].agent is None


def test_excess_columns(tmp_path: Path) -> None:
    """Rows with more than 40 filled cells are listed; trailing empty cells do not count."""
    header = ["PhoneNumber", *(f"c{i}" for i in range(44))]
    wide = ["9876543210", *("x" for _ in range(40))]  # 41 filled cells
    just_fits = ["9876543210", *("x" for _ in range(39)), "", "", ""]  # 40 filled
    data = write_csv(tmp_path / "a.csv", [header, just_fits, wide, just_fits, wide, ["bad"]])
    assert refusal(parse(data)) == f"Excess columns found at rows [2,4] for campaign {CAMPAIGN}"


def test_forty_columns_accepted(tmp_path: Path) -> None:
    """Exactly 40 filled columns is within the limit."""
    header = ["PhoneNumber", *(f"c{i}" for i in range(39))]
    data = write_csv(tmp_path / "a.csv", [header, ["9876543210", *("x" for _ in range(39))]])
    assert len(accepted(parse(data)).rows[0].extra) == 39


def _many_rows(path: Path, count: int) -> bytes:
    return write_csv(
        path,
        [["PhoneNumber", "Name"], *([f"98{i:08d}", f"Lead {i}"] for i in range(count))],
    )


def test_fifty_thousand_rows_accepted_quickly(tmp_path: Path) -> None:
    """50,000 records are allowed and parse in well under a second."""
    data = _many_rows(tmp_path / "a.csv", 50_000)
    started = time.perf_counter()
    result = accepted(parse(data))
    elapsed = time.perf_counter() - started
    assert len(result.rows) == 50_000
    assert result.rows[-1].phone_numbers == ["9800049999"]
    assert elapsed < 1.0, elapsed  # typically 0.15-0.4 s; the bound allows a loaded CI box


def test_fifty_thousand_and_one_rows_refused(tmp_path: Path) -> None:
    """One record over the limit refuses the whole file."""
    data = _many_rows(tmp_path / "a.csv", 50_001)
    assert refusal(parse(data)) == "Data limit exceeded"


def test_data_limit_after_excess_columns(tmp_path: Path) -> None:
    """Excess columns are reported before the data limit, for a file within the size bounds."""
    wide = ["9876543210", *("x" for _ in range(41))]
    rows = [["PhoneNumber"], wide, *([f"98{i:08d}"] for i in range(40_000))]
    data = write_csv(tmp_path / "a.csv", rows)
    assert refusal(parse(data)) == f"Excess columns found at rows [1] for campaign {CAMPAIGN}"


def test_past_the_size_bounds_the_data_limit_comes_first(tmp_path: Path) -> None:
    """A file past 50,001 rows is refused before it is read, excess columns or not."""
    wide = ["9876543210", *("x" for _ in range(41))]
    rows = [["PhoneNumber"], wide, *([f"98{i:08d}"] for i in range(50_000))]
    data = write_csv(tmp_path / "a.csv", rows)
    assert refusal(parse(data)) == "Data limit exceeded"


@pytest.mark.parametrize(
    "phone",
    ["98765x43210", "12", "12345678901234567", "98765_43210", "9876#543210", "", "+-()"],
)
def test_invalid_phone(tmp_path: Path, phone: str) -> None:
    """Letters, other punctuation, fewer than 3 or more than 16 digits, blank: invalid."""
    data = write_csv(
        tmp_path / "a.csv", [["PhoneNumber", "Name"], ["9876543210", "ok"], [phone, "x"]]
    )
    assert refusal(parse(data)) == f"Invalid phone no.s found at rows [2] for campaign {CAMPAIGN}"


@pytest.mark.parametrize(
    "phone", ["123", "1234567890123456", "+91 98765-43210", "(0) [98765].43210", "98765,43210"]
)
def test_valid_phone(tmp_path: Path, phone: str) -> None:
    """Digits with space ( ) [ ] . + - , and 3 to 16 digits are valid, kept as given."""
    data = write_csv(tmp_path / "a.csv", [["PhoneNumber"], [phone]])
    assert accepted(parse(data)).rows[0].phone_numbers == [phone]


def test_invalid_phone_rows_listed_without_spaces(tmp_path: Path) -> None:
    """Rows are 1-based data rows, ascending, as "[1,2,5]"; a blank row keeps its number."""
    rows: list[list[Cell]] = [["PhoneNumber"], ["x1"], ["bad"], [""], ["9876543210"], ["12"]]
    rows[3] = ["", ""]  # an entirely blank row is skipped but still counted in the numbering
    data = write_csv(tmp_path / "a.csv", rows)
    assert (
        refusal(parse(data)) == f"Invalid phone no.s found at rows [1,2,5] for campaign {CAMPAIGN}"
    )


def test_invalid_phone_in_xlsx(tmp_path: Path) -> None:
    """The same phone rule applies to workbooks."""
    data = write_xlsx(tmp_path / "a.xlsx", [["PhoneNumber"], [9876543210], ["abc"], [12]])
    assert refusal(parse(data)) == f"Invalid phone no.s found at rows [2,3] for campaign {CAMPAIGN}"


def test_invalid_agent_ids(tmp_path: Path) -> None:
    """Agentwise: agent ids not among the account's agents (or blank) are listed."""
    data = write_csv(
        tmp_path / "a.csv",
        [
            ["PhoneNumber", "AgentId"],
            ["9876543210", "agent1"],
            ["9876543211", "ghost"],
            ["9876543212", ""],
            ["9876543213", "agent2"],
        ],
    )
    assert refusal(parse(data, "agentwise")) == (
        f"Invalid AgentIds found at rows [2,3] for campaign {CAMPAIGN}"
    )


def test_agent_ids_not_checked_without_agentwise(tmp_path: Path) -> None:
    """A campaign that is not agentwise carries an unknown agent id without checking it."""
    data = write_csv(tmp_path / "a.csv", [["PhoneNumber", "AgentId"], ["9876543210", "ghost"]])
    assert accepted(parse(data, "none")).rows[0].agent == "ghost"


def test_invalid_skills(tmp_path: Path) -> None:
    """Skillwise: skill names not among the account's skills are listed."""
    data = write_csv(
        tmp_path / "a.csv",
        [["PhoneNumber", "Skill"], ["9876543210", "Tamil"], ["9876543211", "Hindi"]],
    )
    assert refusal(parse(data, "skillwise")) == (
        f"Invalid Skill names found at rows [1] for campaign {CAMPAIGN}"
    )


def test_long_names(tmp_path: Path) -> None:
    """Names over 100 characters are listed; exactly 100 is allowed."""
    data = write_csv(
        tmp_path / "a.csv",
        [["PhoneNumber", "Name"], ["9876543210", "n" * 100], ["9876543211", "n" * 101]],
    )
    assert refusal(parse(data)) == "Rows exceeded allowed name column size(100) : [2]"


def test_phone_checked_before_agents_skills_and_names(tmp_path: Path) -> None:
    """With every row-level problem at once, the phone message wins."""
    data = write_csv(
        tmp_path / "a.csv",
        [["PhoneNumber", "AgentId", "Name"], ["bad", "ghost", "n" * 101]],
    )
    assert refusal(parse(data, "agentwise")).startswith("Invalid phone no.s found at rows [1]")


def test_agents_checked_before_names(tmp_path: Path) -> None:
    """An unknown agent is reported before a long name."""
    data = write_csv(
        tmp_path / "a.csv",
        [["PhoneNumber", "AgentId", "Name"], ["9876543210", "ghost", "n" * 101]],
    )
    assert refusal(parse(data, "agentwise")).startswith("Invalid AgentIds found at rows [1]")


def test_campaign_name_with_braces_is_literal(tmp_path: Path) -> None:
    """The campaign name is text in the message, never a format string."""
    data = write_csv(tmp_path / "a.csv", [["PhoneNumber"], ["bad"]])
    result = parse_upload(
        data, campaign_name="{0} {x}", assignment="none", agent_ids=set(), skills=set()
    )
    assert refusal(result) == "Invalid phone no.s found at rows [1] for campaign {0} {x}"


def test_cells_beyond_the_header_are_ignored(tmp_path: Path) -> None:
    """A row longer than the header does not leak its extra cells into roles or extra."""
    data = write_csv(tmp_path / "a.csv", [["PhoneNumber", "Name"], ["9876543210", "A", "stray"]])
    assert accepted(parse(data, "none")).rows == [
        LeadFields(phone_numbers=["9876543210"], name="A")
    ]
