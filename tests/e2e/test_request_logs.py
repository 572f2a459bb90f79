"""The request log lines of a real `serve`, as an operator reads them: times and request ids
as they were, phone numbers masked."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import msgspec

from tests.support import serve_process, stop, until_ready

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


async def test_request_lines_keep_times_and_request_ids_and_mask_numbers(
    database_url: str, tmp_path: Path
) -> None:
    """A caller's X-Request-ID is logged as sent and the timestamp reads as a time, while a
    phone number in a path nobody routes is masked to its last two digits."""
    log_file = tmp_path / "serve.log"
    with log_file.open("wb") as stderr:
        served = serve_process(
            database_url, stderr=stderr, LEDGER_LOG_FORMAT="json", LEDGER_LOG_LEVEL="info"
        )
        try:
            await until_ready(served)
            async with aiohttp.ClientSession() as session:
                headers = {"X-Request-ID": "order-20261203-1234567"}
                async with session.get(f"{served.base_url}/healthz", headers=headers) as answer:
                    assert answer.headers["X-Request-ID"] == "order-20261203-1234567"
                async with session.get(f"{served.base_url}/no/such/9876543210") as answer:
                    assert answer.status == 404
        finally:
            stop(served)
    lines = [msgspec.json.decode(line) for line in log_file.read_bytes().splitlines()]
    requests = [line for line in lines if line["event"] == "request"]
    by_route = {line["route"]: line for line in requests}
    assert by_route["/healthz"]["request_id"] == "order-20261203-1234567"
    assert "/no/such/********10" in by_route, sorted(by_route)
    assert all(ISO_UTC.fullmatch(line["timestamp"]) for line in lines), lines
    assert all(line["client"] == "127.0.0.1" for line in requests)
