"""What a background loop (job worker, callback dispatcher, webhook delivery, export sweep)
logs as one line while the database is down, rather than a traceback every poll interval."""

from __future__ import annotations

import asyncpg
import pytest

from lead_ledger.service.worker import DATABASE_UNAVAILABLE


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    ],
)
def test_a_database_that_is_down_is_recognised(error: Exception) -> None:
    """Refused, closed, starting up, terminated: the database is not there."""
    assert isinstance(error, DATABASE_UNAVAILABLE)


@pytest.mark.parametrize(
    "error", [ValueError("boom"), asyncpg.UniqueViolationError("duplicate key"), KeyError("x")]
)
def test_anything_else_keeps_its_traceback(error: Exception) -> None:
    """A bug, or a statement the database refused: logged with its traceback."""
    assert not isinstance(error, DATABASE_UNAVAILABLE)
