"""A database made before `transfers.last_error` existed gets the column when it opens (Alembic
revision 0004), once, and keeps its rows; opening it again changes nothing."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

from gateway.state.store import Store

DUMP = Path(__file__).with_name("data") / "state-0.1.sql"


def _columns(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [r[1] for r in db.execute("PRAGMA table_info(transfers)")]


def test_an_old_database_gets_last_error_and_keeps_its_transfers(tmp_path: Path) -> None:
    path = tmp_path / "tachiai.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(DUMP.read_text(encoding="utf-8"))
    assert "last_error" not in _columns(path)
    store = Store(path)
    assert _columns(path).count("last_error") == 1
    t = store.get("t-0000000000a1")
    assert t.state == "delivered" and t.last_error is None and t.last_error_dict() is None
    error = {"rule": "delivery.unavailable", "message": "m", "hint": "h"}
    store.update(t, [], last_error=json.dumps(error))
    again = Store(path)  # idempotent: a second opening adds nothing
    assert _columns(path).count("last_error") == 1
    assert again.get(t.id).last_error_dict() == error
