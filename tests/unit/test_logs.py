"""Log processors: phone numbers never reach the log in full."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import msgspec

from lead_ledger.logs import mask_phone, mask_phone_numbers


def test_mask_keeps_the_last_two_digits() -> None:
    """Enough to correlate a line with a lead, not enough to dial."""
    assert mask_phone("+91 98765 43210") == "**********10"
    assert mask_phone("call 9876543210 now") == "call ********10 now"


def test_short_numbers_are_left_alone() -> None:
    """Ids, counts and years are not phone numbers."""
    assert mask_phone("lead 12345 in 2026") == "lead 12345 in 2026"


def test_processor_masks_phone_keys_and_phone_like_values() -> None:
    """Known phone keys are masked whatever they hold; other values only when they look like one."""
    event: dict[str, Any] = {
        "event": "lead_added",
        "phone": "98765-43210",
        "numeric": "919876543210",
        "note": "customer at 040 2345 6789 asked",
        "lead_id": 42,
        "phone_numbers": ["9876543210", "01234567"],
    }
    masked = mask_phone_numbers(None, "info", event)
    assert masked == {
        "event": "lead_added",
        "phone": "********10",
        "numeric": "**********10",
        "note": "customer at *********89 asked",
        "lead_id": 42,
        "phone_numbers": ["********10", "******67"],
    }


def test_timestamps_ids_and_request_ids_are_never_masked() -> None:
    """What the service writes itself (times, ids, a caller's request id, the client address)
    reads as written, digits and all."""
    event: dict[str, Any] = {
        "event": "request",
        "timestamp": "2026-12-03T07:46:12.123438Z",
        "request_id": "order-20261203-1234567",
        "job_id": "20261203123",
        "received_at": "2026-12-03 07:46:12",
        "client": "127.0.0.1",
        "route": "/v1/leads/{lead_id}",
    }
    assert mask_phone_numbers(None, "info", dict(event)) == event


def test_digits_inside_a_word_are_not_a_number() -> None:
    """A hex id or a reference with a long digit run is left alone; a number standing in the
    text is masked."""
    text = "upload eae70db8ea1234567c806b1c2bf8 ref order-20261203-1234567 for 9876543210"
    assert mask_phone(text) == (
        "upload eae70db8ea1234567c806b1c2bf8 ref order-20261203-1234567 for ********10"
    )


def _logged(code: str) -> list[dict[str, Any]]:
    """The JSON lines a fresh process writes to stderr after configure_logging("json") and
    `code` (a process of its own: the configuration is global)."""
    script = (
        "import logging, structlog\n"
        "from lead_ledger.logs import configure_logging\n"
        "configure_logging('json')\n" + code
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", script], capture_output=True, check=True, timeout=60
    )
    return [msgspec.json.decode(line) for line in done.stderr.splitlines()]


def test_a_traceback_is_masked_like_any_text() -> None:
    """An exception logged with its traceback has the numbers in its message masked: the
    traceback is rendered to text before the masking, not after it."""
    [line] = _logged(
        "try:\n    raise ValueError('no lead for 9876543210')\n"
        "except ValueError:\n    structlog.get_logger().exception('failed')\n"
    )
    assert line["event"] == "failed"
    assert "ValueError: no lead for ********10" in line["exception"]
    assert "9876543210" not in line["exception"]


def test_the_standard_librarys_records_are_json_lines_and_masked() -> None:
    """A record of a library's own logger (asyncio's, aiohttp's) is one JSON line with its
    logger's name, its level and its traceback masked, never Python's plain text."""
    [line] = _logged(
        "try:\n    raise OSError('peer 9876543210 went away')\n"
        "except OSError:\n    logging.getLogger('asyncio').exception('lost %s', 'conn')\n"
    )
    assert (line["event"], line["logger"], line["level"]) == ("lost conn", "asyncio", "error")
    assert "OSError: peer ********10 went away" in line["exception"]
