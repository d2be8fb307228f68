"""A state database written by release 0.1 opens with this release and keeps every row.

`data/state-0.1.sql` is such a database, dumped: its tables as 0.1 created them (some lazily,
on first use), with one row in each of the tables that matter.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path

import pytest

from gateway.state import fingerprint_store, holdings_store, keys_store, links, schema
from gateway.state.store import Store

DUMP = Path(__file__).with_name("data") / "state-0.1.sql"
# What a 0.1 gateway that never received anything had: the tables created when it opened.
FIRST_TABLES = {"transfers", "approvals", "pending_events"}
# Every table 0.1 had; tables added since (e.g. the ledger record) have no 0.1 form to match.
TABLES_0_1 = set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?\"?(\w+)", DUMP.read_text("utf-8")))


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


@pytest.mark.parametrize("table", sorted(t.name for t in schema.TABLES if t.name in TABLES_0_1))
def test_an_upgraded_0_1_table_is_exactly_a_new_one(tmp_path: Path, table: str) -> None:
    """Both go through the same Alembic revisions (0001 is 0.1's schema written out; later ones
    add tables, columns and indexes), so a gateway upgraded from 0.1 and a new one agree."""
    old = tmp_path / "old.db"
    _load(old, drop_lazy=False)
    before = _columns(old, table)
    Store(old).engine.dispose()
    Store(tmp_path / "new.db").engine.dispose()
    assert _ddl(tmp_path / "new.db", table) == _ddl(old, table)
    # 0.1's columns are kept, in their order; what was added came after them.
    assert before and _columns(old, table)[: len(before)] == before


def _columns(path: Path, table: str) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [(r[1], r[2]) for r in db.execute(f"PRAGMA table_info({table})")]


def _ddl(path: Path, table: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
            "ORDER BY type, name",
            (table,),
        )
        return [" ".join(r[0].split()) for r in rows]


def test_a_0_1_database_gains_the_indexes_added_since(tmp_path: Path) -> None:
    path = tmp_path / "tachiai.db"
    _load(path, drop_lazy=False)
    Store(path).engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert set(schema.LATER_INDEXES) <= names
