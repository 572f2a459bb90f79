"""`serve`'s pools send no reset on release (database._end_transaction_only), so no statement
the package sends may leave state in the session: settings only for the transaction, session
advisory locks only where their connection is the caller's own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "lead_ledger"
# A statement that changes a setting for the session: `SET name = value` or `TO value`, SET ROLE
# or SESSION AUTHORIZATION, at a statement's start (UPDATE's and ALTER TABLE's SET are not), or
# set_config with is_local false. SQL here is written in capitals.
SESSION_SET = re.compile(
    r"(?:\A|;)\s*SET\s+(?:(?:SESSION\s+)?(?!LOCAL\b|TRANSACTION\b)\w+\s*(?:=|TO\b)"
    r"|ROLE\b|SESSION\s+AUTHORIZATION\b)"
    r"|set_config\([^)]*,\s*false\s*\)"
)
SESSION_LOCK = re.compile(r"pg_(?:try_)?advisory_lock(?:_shared)?\s*\(", re.IGNORECASE)
# Session locks, each taken on a connection that never belongs to `serve`'s pools: the
# migration's and the roles' own connection (ledger/locks.py, used by migrate.py and roles.py),
# and a rebuild's or verify's, which run from the command line's pools. One is taken on a
# serving pool's connection on purpose: a claimed job's liveness lock (service/jobs/
# lifecycle.py), which `jobs.let_go` releases, or closes the connection, before the connection
# goes back (tests/integration/test_jobs.py checks that none is left held).
SESSION_LOCK_MODULES = {
    "ledger/locks.py",
    "projections/rebuild/shadow.py",
    "service/jobs/lifecycle.py",
}


def _strings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def _found(pattern: re.Pattern[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        hits = [text for text in _strings(path) if pattern.search(text)]
        if hits:
            found[str(path.relative_to(PACKAGE))] = hits
    return found


def test_no_statement_changes_a_setting_for_the_session() -> None:
    """Every SET is SET LOCAL (or SET TRANSACTION), every set_config local."""
    assert _found(SESSION_SET) == {}


def test_session_advisory_locks_are_taken_only_off_the_serving_pools() -> None:
    """Session advisory locks appear only in the modules that take them on their own
    connections."""
    assert set(_found(SESSION_LOCK)) <= SESSION_LOCK_MODULES


def test_the_checks_see_what_they_look_for() -> None:
    """The patterns match session-level statements and pass their local forms."""
    assert SESSION_SET.search("SET statement_timeout = 0")
    assert SESSION_SET.search("BEGIN; SET TimeZone = 'UTC'")
    assert SESSION_SET.search("SELECT set_config('TimeZone', 'UTC', false)")
    assert not SESSION_SET.search("SET LOCAL TimeZone = 'UTC'")
    assert SESSION_SET.search("SET SESSION search_path TO public")
    assert SESSION_SET.search("SET ROLE lead_ledger_owner")
    assert not SESSION_SET.search("UPDATE t\nSET a = 1")
    assert not SESSION_SET.search(" SET SCHEMA public")
    assert not SESSION_SET.search("SELECT set_config('synchronous_commit', 'off', true)")
    assert SESSION_LOCK.search("SELECT pg_try_advisory_lock($1)")
    assert not SESSION_LOCK.search("SELECT pg_advisory_xact_lock($1)")
