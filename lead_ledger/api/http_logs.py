"""What aiohttp's server logs of a request it cannot read as HTTP, kept free of the request.

aiohttp answers such a request (a request line or a header past 8,190 bytes, a bad method)
before any route sees it, and logs it with a traceback whose message quotes the raw bytes: a
query string's password, an Authorization header, a phone number. It is logged instead as what
went wrong and from where, without them: `unreadable_http_request` with `client` (logged as
is, never masked: an address is no phone number), `error` (aiohttp's exception class) and
`status`; at warning level (the client's fault) where aiohttp logged an error, and left at debug
where it logged a bad method on a connection's first request (scanners, TLS on a plain port).
"""

from __future__ import annotations

import logging
from typing import Final

from aiohttp.http_exceptions import HttpProcessingError

UNREADABLE: Final = "unreadable_http_request"


class UnreadableRequests(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
            record.msg, record.args = UNREADABLE, ()
            # Fields of the line (logs.py adds a record's extra attributes to it).
            record.client = remote
            record.error = type(error).__name__
            record.status = error.code
            record.exc_info = None
            record.exc_text = None
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_FILTER: Final = UnreadableRequests()


def keep_requests_out_of_server_logs() -> None:
    """Filter aiohttp's server logger (once per process, however many apps are made)."""
    server = logging.getLogger("aiohttp.server")
    if _FILTER not in server.filters:
        server.addFilter(_FILTER)
