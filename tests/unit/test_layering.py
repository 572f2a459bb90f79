"""Dependencies point one way: api -> service -> projections -> ledger; no aiohttp below api."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lead_ledger"
_ABOVE_LEDGER = ("lead_ledger.projections", "lead_ledger.service", "lead_ledger.api")
FORBIDDEN = {
    "ledger": (*_ABOVE_LEDGER, "lead_ledger.cli", "aiohttp"),
    "projections": ("lead_ledger.service", "lead_ledger.api", "lead_ledger.cli", "aiohttp"),
    "service": ("lead_ledger.api", "lead_ledger.cli", "aiohttp"),
    "api": ("lead_ledger.cli",),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_one_way(layer: str) -> None:
    """No module of a layer imports a layer above it."""
    offenders = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in (PACKAGE / layer).rglob("*.py")
        for name in _imports(path)
        if name.startswith(FORBIDDEN[layer])
    }
    assert offenders == set()


def _modules_importing(prefix: str) -> set[str]:
    """Every module under lead_ledger/ importing `prefix` (or a module below it)."""
    return {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        for name in _imports(path)
        if name == prefix or name.startswith(f"{prefix}.")
    }


def test_aiohttp_only_in_api_and_the_command_line() -> None:
    """aiohttp is the api layer's: elsewhere only the composition root (cli.py) runs the app."""
    outside_api = {
        module
        for module in _modules_importing("aiohttp")
        if not module.startswith("api/") and module != "cli.py"
    }
    assert outside_api == set()


def test_live_projections_do_not_depend_on_the_rebuild() -> None:
    """The rebuild sits above the live projections: it replays them, they never call it."""
    offenders = {
        module
        for module in _modules_importing("lead_ledger.projections.rebuild")
        if module.startswith("projections/") and not module.startswith("projections/rebuild/")
    }
    assert offenders == set()


def test_job_kinds_are_chosen_by_the_composition_root_only() -> None:
    """Which kinds a worker runs is decided where the app is built, not by what a module
    happened to import (docs/decisions.md, "The app owns its job kinds and key workers")."""
    assert _modules_importing("lead_ledger.service.job_kinds") == {"api/app.py"}
