"""`gateway.state` is the database edge: the only code that imports the database engine, and a
low layer that imports nothing of the sending or receiving side."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway

GATEWAY = Path(gateway.__file__).parent
ENGINE = ("sqlalchemy", "sqlmodel", "alembic")
ABOVE_STATE = ("gateway.inbound", "gateway.outbound", "gateway.exchange", "gateway.cli",
               "gateway.runtime", "gateway.evidence", "gateway.transports", "gateway.daemon")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_only_gateway_state_imports_the_database_engine() -> None:
    offenders = sorted(
        str(path.relative_to(GATEWAY))
        for path in GATEWAY.rglob("*.py")
        if path.relative_to(GATEWAY).parts[0] != "state"  # state/ and its migrations/
        and any(name.split(".")[0] in ENGINE for name in _imports(path))
    )
    assert offenders == []


def test_gateway_state_imports_nothing_above_it() -> None:
    offenders = sorted(
        f"{path.name}: {name}"
        for path in (GATEWAY / "state").rglob("*.py")
        for name in _imports(path)
        if name.startswith(ABOVE_STATE)
    )
    assert offenders == []
