"""A csv export of now, written by PostgreSQL: `COPY (SELECT ...) TO STDOUT (FORMAT csv)`.

The views hold every value an export of now shows, so PostgreSQL can render the rows itself at
the speed of a COPY, while the Python path (service/export_files.py) renders exports as of a
time and other formats. Both must write the same bytes for the same leads: the expressions
below are the Python path's rules in SQL (the spreadsheet escape, lists joined by ", ", times
as msgspec writes them, a blank for NULL and ''), and a test compares an export of now with an
export as of now byte for byte.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Final

from lead_ledger.ledger.connection import Connection
from lead_ledger.service.csv_lines import CsvLines
from lead_ledger.service.export_files import Columns
from lead_ledger.service.export_rows import EXPORTED_NOW, ExportQuery
from lead_ledger.service.spreadsheet_cells import FORMULA_STARTS, spreadsheet_text

# Every CRM (extra) field name a lead of the export holds: the columns, known before the rows.
SELECT_KEYS: Final = f"""
SELECT DISTINCT jsonb_object_keys(rows.{{column}}) AS k FROM ({EXPORTED_NOW}) rows
"""
# The text fields of a lead (the rest of FIELD_NAMES are a list, a number, a time, maps).
_LIST, _NUMBER, _TIME = "phone_numbers", "priority", "expires_at"


# spreadsheet_cells' formula starts as SQL literals, each written U&'\XXXX' (its code point),
# so that tabs, line feeds and the full-width forms stay readable in the query text.
_FORMULA_STARTS_SQL: Final = ", ".join(f"U&'\\{ord(c):04X}'" for c in sorted(FORMULA_STARTS))


def _escaped(expression: str) -> str:
    """spreadsheet_cell's rule for text: a quote before a formula's first character unless
    the text is a signed number; '' and NULL are both a blank."""
    value = f"NULLIF({expression}, '')"
    return (
        f"CASE WHEN left(ltrim({value}, ' '), 1) IN ({_FORMULA_STARTS_SQL})"
        f" AND {value} !~ '^[+-][0-9 ().-]*$' THEN '''' || {value} ELSE {value} END"
    )


def _time(expression: str) -> str:
    """A time as msgspec writes it in UTC: seconds, then microseconds only when there are
    some, then Z."""
    utc = f"({expression} AT TIME ZONE 'UTC')"
    return (
        f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN"
        f" (date_part('microseconds', {utc})::bigint % 1000000) <> 0"
        f" THEN to_char({utc}, '.US') ELSE '' END || 'Z'"
    )


def _field(name: str) -> str:
    if name == _LIST:
        return _escaped(f"array_to_string(l.{name}, ', ')")
    if name == _NUMBER:
        return f"l.{name}"
    if name == _TIME:
        return _time(f"l.{name}")
    return _escaped(f"l.{name}")


def copy_query(columns: Columns) -> str:
    """The SELECT whose csv is the export's rows, in the columns' order."""
    cells = [
        "l.lead_id",
        _escaped("c.name"),
        _escaped("CASE WHEN l.dnc THEN 'DNC' ELSE l.status END"),
    ]
    if columns.archived:
        cells.append("CASE WHEN l.archived THEN 'true' ELSE 'false' END")
    cells += [_field(name) for name in columns.fields]
    cells += [_escaped(f"l.crm ->> ($4::text[])[{i}]") for i in range(1, len(columns.crm) + 1)]
    cells += [_escaped(f"l.extra ->> ($5::text[])[{i}]") for i in range(1, len(columns.extra) + 1)]
    cells += [_time("l.entry_at"), _time("l.modified_at")]
    # $4 and $5 are typed even when no column reads them (no CRM or extra fields).
    return (
        f"SELECT {', '.join(cells)} FROM ({EXPORTED_NOW}) l"
        " JOIN campaigns c ON c.campaign_id = l.campaign_id"
        " WHERE cardinality($4::text[]) >= 0 AND cardinality($5::text[]) >= 0"
        " ORDER BY l.lead_id"
    )


async def field_names(conn: Connection, query: ExportQuery, column: str) -> list[str]:
    """The CRM (`crm`) or extra (`extra`) names the export's leads hold, sorted as the Python
    path sorts them (by code point, never by a collation)."""
    if column not in ("crm", "extra"):
        raise ValueError(column)
    rows = await conn.fetch(
        SELECT_KEYS.format(column=column),
        query.account_id,
        query.campaign_id,
        query.include_archived,
    )
    return sorted(row["k"] for row in rows)


async def copy_csv(conn: Connection, query: ExportQuery, columns: Columns, target: Path) -> int:
    """Write the header, then PostgreSQL's csv of the rows, to `target`; returns the rows."""
    header = io.StringIO()
    CsvLines(header).writerow([spreadsheet_text(name) for name in columns.header()])
    with target.open("wb") as out:
        out.write(header.getvalue().encode())
        status = await conn.copy_from_query(
            copy_query(columns),
            query.account_id,
            query.campaign_id,
            query.include_archived,
            columns.crm,
            columns.extra,
            output=out,
            format="csv",
        )
    # "COPY <rows>"
    return int(status.split()[-1])
