"""The state database: every table is created when a store opens, in every store, and a
constraint or a lock held by another process becomes our own error, not the engine's."""

from __future__ import annotations

import contextlib
import gc
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from gateway.errors import StateError, StorageError
from gateway.state import schema
from gateway.state.store import Approval, Store


def _tables(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_every_table_exists_once_a_store_is_open(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    assert _tables(tmp_path / "state.db") >= {t.name for t in schema.TABLES}
    assert inspect(store.engine).has_table(schema.LINKS.name)
    store.engine.dispose()


def test_each_new_store_gets_its_own_tables_even_when_an_old_one_was_freed(
    tmp_path: Path,
) -> None:
    # Stores opened and dropped one after another often land at the same address. Readiness
    # once keyed by id() made a fresh database look ready: "no such table" at the next query.
    for n in range(6):
        store = Store(tmp_path / f"state-{n}.db")
        with store.reading() as conn:
            assert conn.execute(select(schema.LINKS)).all() == []
        store.engine.dispose()
        del store
        gc.collect()


def test_a_second_store_opens_a_database_another_made_and_sees_its_rows(tmp_path: Path) -> None:
    first = Store(tmp_path / "state.db")
    with first.transaction() as conn:
        first.add_approval(
            Approval(transfer_id="t-1", witness="suzuki", fingerprint="f", sha256="s",
                     signature="x", created_ns=1),
            conn,
        )
    second = Store(tmp_path / "state.db")  # as a second command would open it
    assert [a.witness for a in second.approvals("t-1")] == ["suzuki"]


def test_a_row_another_process_wrote_first_is_a_state_error_not_an_engine_error(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "state.db")
    approval = Approval(transfer_id="t-1", witness="suzuki", fingerprint="f", sha256="s",
                        signature="x", created_ns=1)
    with store.transaction() as conn:
        store.add_approval(approval, conn)
    with pytest.raises(StateError, match="already holds this record"), store.transaction() as conn:
        store.add_approval(approval, conn)


def test_a_database_locked_by_another_writer_is_a_storage_error_that_says_so(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    Store(path).engine.dispose()
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StorageError, match="locked by another process") as caught:
            Store(path, busy_timeout_seconds=0.2)
        assert caught.value.exit_code == 74
        assert "fuser" in caught.value.hint
        other.execute("ROLLBACK")
