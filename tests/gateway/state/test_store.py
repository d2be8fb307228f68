"""The state database: tables exist in every store that needs them, whatever came before."""

from __future__ import annotations

import gc
from pathlib import Path

from sqlalchemy import select

from gateway.inbound import holdings
from gateway.state.store import Store


def test_each_new_store_gets_its_own_tables_even_when_an_old_one_was_freed(
    tmp_path: Path,
) -> None:
    # Stores opened and dropped one after another often land at the same address. Readiness
    # once keyed by id() made a fresh database look ready: "no such table" at the next query.
    for n in range(40):
        store = Store(tmp_path / f"state-{n}.db")
        assert not store.has_table(holdings.L.name)
        store.ensure_tables("holdings", [holdings.H, holdings.L])
        assert store.has_table(holdings.L.name)
        with store.engine.connect() as conn:
            assert conn.execute(select(holdings.L)).all() == []
        store.engine.dispose()
        del store
        gc.collect()


def test_tables_made_by_another_process_are_found_without_creating(tmp_path: Path) -> None:
    first = Store(tmp_path / "state.db")
    first.ensure_tables("holdings", [holdings.L])
    second = Store(tmp_path / "state.db")  # as a second command would open it
    assert second.has_table(holdings.L.name)
    assert not second.has_table(holdings.H.name)
