"""Errors the application services raise; each adapter maps them to its own shapes.

They derive from LedgerError so the CLI reports them as a one-line message, never a traceback.
"""

from __future__ import annotations

from lead_ledger.ledger.errors import LedgerError


class ServiceError(LedgerError):
    """Base class of refusals a caller can act on (as opposed to bugs)."""


class NotFound(ServiceError):  # noqa: N818 - named after the HTTP answer it becomes
    """The account, campaign or credential named does not exist (or is not this account's)."""


class Conflict(ServiceError):  # noqa: N818
    """The name is taken: account names, usernames, and per-account campaign, agent, skill."""


class Invalid(ServiceError):  # noqa: N818
    """A value is well-typed but not acceptable; `field` names it (dotted, like `$.a.b`)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
