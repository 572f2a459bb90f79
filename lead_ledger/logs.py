"""Logging, configured once at start: JSON lines in production, the console renderer on a TTY.

Phone numbers are masked before anything is rendered: logs travel further than the database.
Tracebacks are rendered to text first, so that they are masked too, and the standard library's
loggers (aiohttp's, asyncio's) go through the same processors: one line, one JSON object.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Final, TextIO

import msgspec
import structlog

from lead_ledger.settings import LogFormat

# Runs of 7 or more digits, allowing the separators people type in phone numbers, and standing
# alone: digits inside a longer word (a hex id; "order-20261203-1234567") are not a number.
_PHONE: Final = re.compile(r"(?<![\w-])\+?\d[\d\s().-]{5,}\d(?![\w-])")
_PHONE_KEYS: Final = frozenset(
    {"phone", "phone_number", "phonenumber", "numeric", "alt_numeric", "phone_numbers"}
)
# What the service itself writes, never a lead's data: left as it is, so a timestamp reads as one
# and a caller's X-Request-ID finds its line. Every other text is searched for phone numbers.
_NEVER_MASKED: Final = frozenset(
    {
        "timestamp",
        "request_id",
        "level",
        "event",
        "logger",
        "method",
        "status",
        "duration_ms",
        "client",
    }
)
_ID_SUFFIXES: Final = ("_id", "_ids", "_at")


def mask_phone(text: str) -> str:
    """Keep the last two digits of each phone-like run: enough to correlate, not to dial."""

    def _mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        if len(digits) < 7:
            return match.group()
        return "*" * (len(digits) - 2) + digits[-2:]

    return _PHONE.sub(_mask, text)


def _may_hold_a_phone(key: str) -> bool:
    return key not in _NEVER_MASKED and not key.endswith(_ID_SUFFIXES)


def mask_phone_numbers(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask phone numbers in every value that can hold one: the phone fields whatever they hold,
    other text (messages, paths, tracebacks) where a number stands in it; never ids or times."""
    for key, value in event_dict.items():
        phone_field = key.lower() in _PHONE_KEYS
        if isinstance(value, str) and _may_hold_a_phone(key):
            event_dict[key] = mask_phone(value) if phone_field or _PHONE.search(value) else value
        elif isinstance(value, list) and phone_field:
            event_dict[key] = [mask_phone(str(v)) for v in value]
    return event_dict


def _json_serializer(obj: Any, **_kwargs: Any) -> bytes:
    return msgspec.json.encode(obj, enc_hook=str)


def _json_text(obj: Any, **_kwargs: Any) -> str:
    return msgspec.json.encode(obj, enc_hook=str).decode()


def configure_logging(log_format: LogFormat = "auto", level: str = "info") -> None:
    console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,  # the traceback as text, before the masking
        mask_phone_numbers,
    ]
    renderer: structlog.types.Processor
    if console:
        renderer = structlog.dev.ConsoleRenderer()
        factory: Any = structlog.PrintLoggerFactory(file=sys.stderr)
        processors: list[structlog.types.Processor] = [*shared, renderer]
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_json_text)
        factory = structlog.BytesLoggerFactory(file=sys.stderr.buffer)
        processors = [*shared, structlog.processors.JSONRenderer(serializer=_json_serializer)]
    threshold = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # The standard library's records, rendered by the same processors.
    handler = _StandardRecords(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
                *shared,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for earlier in [h for h in root.handlers if isinstance(h, _StandardRecords)]:
        root.removeHandler(earlier)  # configured again (a command run twice in one process)
    root.addHandler(handler)
    root.setLevel(threshold)


class _StandardRecords(logging.StreamHandler[TextIO]):
    """The handler configure_logging puts on the root logger (others, a test's, stay)."""
