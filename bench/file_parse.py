"""What parsing an upload in the parser's worker process costs, beside parsing it in process.

Run it from the repository root:

    .venv/bin/python bench/file_parse.py
    .venv/bin/python bench/file_parse.py --rounds 9

For a 1,000-row and a 50,000-row file, csv and xlsx (written by openpyxl, with a phone, a name
and an agent column, as a CRM exports them), each round times `parse_here` (bounds, parse,
validation, the job's JSON payload) in this process, the baseline, and `FileParser.parse`, the
same work in the worker plus the round trip of the file and the payload through its pipes.
Medians of the rounds; the worker is warm (started by a first, untimed file). The cold start, a
worker's first file, is timed once. The bounds' own share is `check_workbook` alone. No
database. The exit status is 0: a measurement to read.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import openpyxl

from lead_ledger.service.file_parser import FileParser, ParseRequest, parse_here
from lead_ledger.service.workbook_bounds import check_workbook

if TYPE_CHECKING:
    from bench._support import machine_description, median, print_pairs, print_table
else:
    from _support import machine_description, median, print_pairs, print_table

SIZES: Final = (1_000, 50_000)
MEMORY_BYTES: Final = 1024**3  # the default LEDGER_PARSER_MEMORY_BYTES


def rows(count: int) -> list[list[str]]:
    header = ["PhoneNumber", "Name", "AgentId"]
    return [header, *([f"98{i:08d}", f"Lead {i}", "agent-1"] for i in range(count))]


def as_csv(table: list[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out).writerows(table)
    return out.getvalue().encode()


def as_xlsx(table: list[list[str]]) -> bytes:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet()
    for row in table:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def request(data: bytes) -> ParseRequest:
    return ParseRequest(
        data=data, campaign_name="bench", assignment="none", agent_ids=[], skills=[]
    )


def timed(work: Callable[[bytes], object], data: bytes) -> float:
    started = time.perf_counter()
    work(data)
    return time.perf_counter() - started


def parse_in_process(data: bytes) -> object:
    return parse_here(request(data))


async def timed_async(parser: FileParser, data: bytes) -> float:
    started = time.perf_counter()
    await parser.parse(request(data))
    return time.perf_counter() - started


async def main(rounds: int) -> None:
    print("file parsing: in process against the parser's worker process")
    print_pairs(machine_description())
    table = [["file", "size", "bounds", "in process", "worker", "overhead", "worker, cold"]]
    for count in SIZES:
        for kind, data in (("csv", as_csv(rows(count))), ("xlsx", as_xlsx(rows(count)))):
            with FileParser(memory_bytes=MEMORY_BYTES, timeout_seconds=60) as parser:
                cold = await timed_async(parser, data)
                here, there, bounds = [], [], []
                for _ in range(rounds):
                    here.append(timed(parse_in_process, data))
                    there.append(await timed_async(parser, data))
                    if kind == "xlsx":
                        bounds.append(timed(check_workbook, data))
            baseline, worker = median(here), median(there)
            table.append(
                [
                    f"{count:,} rows {kind}",
                    f"{len(data) / 1024:,.0f} KiB",
                    f"{median(bounds) * 1000:.1f} ms" if bounds else "-",
                    f"{baseline * 1000:.1f} ms",
                    f"{worker * 1000:.1f} ms",
                    f"{(worker - baseline) * 1000:+.1f} ms",
                    f"{cold * 1000:.1f} ms",
                ]
            )
    print_table(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args().rounds))
