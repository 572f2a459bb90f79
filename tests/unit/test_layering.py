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
