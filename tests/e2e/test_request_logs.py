"""The request log lines of a real `serve`, as an operator reads them: times and request ids
as they were, phone numbers masked."""

from __future__ import annotations

import asyncio
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
    path nobody routes is logged by its shape: no number, name or address it holds."""
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
                for path in ("/v1/such/9876543210", "/asha.rao@example.com/Zyxquorth"):
                    async with session.get(f"{served.base_url}{path}") as answer:
                        assert answer.status == 404
        finally:
            stop(served)
    lines = [msgspec.json.decode(line) for line in log_file.read_bytes().splitlines()]
    requests = [line for line in lines if line["event"] == "request"]
    by_route = {line["route"]: line for line in requests}
    assert by_route["/healthz"]["request_id"] == "order-20261203-1234567"
    assert "/v1/{}/{}" in by_route, sorted(by_route)  # a routed API's prefix is kept
    assert "/{}/{}" in by_route, sorted(by_route)
    text = log_file.read_text()
    assert "98765" not in text
    assert "asha" not in text
    assert "Zyxquorth" not in text
    assert all(ISO_UTC.fullmatch(line["timestamp"]) for line in lines), lines
    assert all(line["client"] == "127.0.0.1" for line in requests)


async def _raw_request(base_url: str, head: bytes) -> bytes:
    """Send `head` as a request's head on a connection of its own; the answer's first line."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        await writer.drain()
        return await reader.readline()
    finally:
        writer.close()


async def test_a_request_that_is_no_http_leaves_no_secret_in_the_log(
    database_url: str, tmp_path: Path
) -> None:
    """A request line or a header past the HTTP parser's limit is answered 400 before any
    route; its log line is one JSON warning saying so, with neither the password of its query
    string, nor its bearer key, nor its phone number, and no traceback."""
    log_file = tmp_path / "serve.log"
    query = "user=u&pass=Sekr3tPass&phone_number=" + ",".join(["9876543210"] * 900)
    with log_file.open("wb") as stderr:
        served = serve_process(
            database_url, stderr=stderr, LEDGER_LOG_FORMAT="json", LEDGER_LOG_LEVEL="info"
        )
        try:
            await until_ready(served)
            line = f"GET /vicidial/non_agent_api.php?{query} HTTP/1.1\r\nHost: x\r\n\r\n"
            status = await _raw_request(served.base_url, line.encode())
            assert status.split()[1:2] == [b"400"], status
            header = "Authorization: Bearer Sekr3tKey" + "k" * 9000
            head = f"GET /v1/leads HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n"
            status = await _raw_request(served.base_url, head.encode())
            assert status.split()[1:2] == [b"400"], status
            async with (  # still serving
                aiohttp.ClientSession() as session,
                session.get(f"{served.base_url}/healthz") as answer,
            ):
                assert answer.status == 200
        finally:
            stop(served)
    text = log_file.read_bytes()
    lines = [msgspec.json.decode(line) for line in text.splitlines()]  # every line is JSON
    unreadable = [line for line in lines if line["event"] == "unreadable_http_request"]
    assert len(unreadable) == 2, lines
    assert all(line["level"] == "warning" and "exception" not in line for line in unreadable)
    assert {(line["client"], line["status"]) for line in unreadable} == {("127.0.0.1", 400)}
    assert {line["error"] for line in unreadable} == {"LineTooLong"}
    for secret in (b"Sekr3tPass", b"Sekr3tKey", b"9876543210", b"Traceback"):
        assert secret not in text, secret
