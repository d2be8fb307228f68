"""A state database written by release 0.1 opens with this release and keeps every row.

`data/state-0.1.sql` is such a database, dumped: its tables as 0.1 created them (some lazily,
on first use), with one row in each of the tables that matter.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from gateway.state import fingerprint_store, holdings_store, keys_store, links, schema
from gateway.state.store import Store

DUMP = Path(__file__).with_name("data") / "state-0.1.sql"
# What a 0.1 gateway that never received anything had: the tables created when it opened.
FIRST_TABLES = {"transfers", "approvals", "pending_events"}


def _load(path: Path, drop_lazy: bool) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(DUMP.read_text(encoding="utf-8"))
        if drop_lazy:
            names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for name in names:
                if name not in FIRST_TABLES:
                    db.execute(f"DROP TABLE {name}")
            db.commit()


def test_a_full_0_1_database_opens_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "tachiai.db"
    _load(path, drop_lazy=False)
    store = Store(path)
    t = store.get("t-0000000000a1")
    assert (t.state, t.sender, t.size) == ("delivered", "sato", 10)
    assert [a.witness for a in store.approvals(t.id)] == ["suzuki"]
    h = holdings_store.get(store, "h-0000000000b1")
    assert (h.state, h.transfer, h.sha256) == ("received", "t-0000000000c1", "cd" * 32)
    link = links.link_of(store, t.id)
    assert link is not None and (link.relation, link.remote) == ("replies_to", "t-0000000000c1")
    assert keys_store.get(store, h.id) == b"\x01" * 32
    assert fingerprint_store.key_check(store) == "kcv"
    assert fingerprint_store.lookup(store, [b"\x02" * 16]) == {b"\x02" * 16: {1}}
    assert fingerprint_store.sources(store)[1].holding == h.id


def test_a_0_1_database_gets_the_tables_it_lacks_and_keeps_its_transfers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tachiai.db"
    _load(path, drop_lazy=True)
    store = Store(path)
    assert store.get("t-0000000000a1").state == "delivered"
    assert holdings_store.find(store) == []
    assert links.link_of(store, "t-0000000000a1") is None
    with contextlib.closing(sqlite3.connect(path)) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names >= {t.name for t in schema.TABLES}


@pytest.mark.parametrize("table", sorted(t.name for t in schema.TABLES))
def test_this_release_creates_each_table_exactly_as_0_1_did(tmp_path: Path, table: str) -> None:
    old = tmp_path / "old.db"
    _load(old, drop_lazy=False)
    Store(tmp_path / "new.db").engine.dispose()

    def ddl(path: Path) -> list[str]:
        # Indexes added since 0.1 (for the paged lists) are additions, not changes: left out.
        with contextlib.closing(sqlite3.connect(path)) as db:
            rows = db.execute(
                "SELECT sql, name FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
                "ORDER BY type, name",
                (table,),
            )
            return [" ".join(r[0].split()) for r in rows if r[1] not in schema.LATER_INDEXES]

    assert ddl(tmp_path / "new.db") == ddl(old)


def test_a_0_1_database_gains_the_indexes_added_since(tmp_path: Path) -> None:
    path = tmp_path / "tachiai.db"
    _load(path, drop_lazy=False)
    Store(path).engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert set(schema.LATER_INDEXES) <= names
