"""Errors the ledger raises; adapters translate them into each dialect's shapes."""


class LedgerError(Exception):
    """Base class of every error the ledger raises on purpose."""


class ConcurrencyError(LedgerError):
    """A stream was not at the version the writer expected: someone else wrote first."""

    def __init__(self, stream_id: str, expected: int, actual: int | None) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, expected {expected}"
            if actual is not None
            else f"stream {stream_id!r}: version {expected} was written concurrently"
        )


class MigrationError(LedgerError):
    """The database's migration history does not match the files this version ships."""
