"""The state database is migrated with Alembic, once, under a lock: a new database ends at the
head revision with exactly the tables of `gateway.state.schema`; a database of release 0.1 (no
version table) is recognised and upgraded; one with a table no release wrote is refused; several
processes opening one new PostgreSQL database at once all succeed and migrate it once.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from audit.ledger import Ledger
from gateway.errors import StorageError
from gateway.state import migrate, schema
from gateway.state.store import Store
from tests.gateway.state.test_old_database import DUMP
from tests.pg import PostgresServer, needs_postgres


def _columns(store: Store) -> dict[str, list[str]]:
    inspector = inspect(store.engine)
    return {
        name: [c["name"] for c in inspector.get_columns(name)]
        for name in inspector.get_table_names()
        if name != migrate.VERSION_TABLE
    }


def _version(store: Store) -> list[str]:
    with store.reading() as conn:
        return [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]


def test_head_is_the_newest_revision() -> None:
    config = Config()
    config.set_main_option("script_location", str(migrate.SCRIPTS))
    assert ScriptDirectory.from_config(config).get_heads() == [migrate.HEAD]


def test_a_new_sqlite_database_ends_at_head_with_exactly_the_schemas_tables(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "state.db")
    assert _version(store) == [migrate.HEAD]
    assert _columns(store) == {t.name: [c.name for c in t.columns] for t in schema.ALL_TABLES}
    Store(tmp_path / "state.db")  # a second open finds it done
    assert _version(store) == [migrate.HEAD]


def test_a_0_1_database_is_stamped_and_upgraded_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "tachiai.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(DUMP.read_text(encoding="utf-8"))
    store = Store(path)
    assert _version(store) == [migrate.HEAD]
    assert store.get("t-0000000000a1").state == "delivered"
    assert _columns(store) == {t.name: [c.name for c in t.columns] for t in schema.ALL_TABLES}


def test_a_table_no_release_wrote_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "tachiai.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE transfers (id VARCHAR PRIMARY KEY, colour VARCHAR)")
        db.commit()
    with pytest.raises(StorageError, match="table transfers that no release"):
        Store(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == {"transfers"}  # nothing was created beside it


# -- PostgreSQL ------------------------------------------------------------------------------


@needs_postgres
def test_a_new_postgres_database_ends_at_head_beside_the_ledger(pg_url: str) -> None:


    Ledger.connect(pg_url).close()  # the ledger's tables first, as a daemon may find them
    store = Store(url=pg_url)
    assert _version(store) == [migrate.HEAD]
    ours = {t.name: [c.name for c in t.columns] for t in schema.ALL_TABLES}
    assert {k: v for k, v in _columns(store).items() if k in ours} == ours
    store.engine.dispose()


def _opener(url: str, barrier: Any, out: Any) -> None:
    barrier.wait(timeout=60)  # every process opens at the same moment
    try:
        Store(url=url).engine.dispose()
        out.put("ok")
    except Exception as exc:  # reported to the test, which shows it
        out.put(f"{type(exc).__name__}: {exc}")


@needs_postgres
@pytest.mark.slow
def test_four_processes_opening_a_new_postgres_database_at_once_migrate_it_once(
    postgres: PostgresServer,
) -> None:
    ctx = multiprocessing.get_context("spawn")
    for _ in range(3):
        url = postgres.url(postgres.create_database())
        barrier, out = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_opener, args=(url, barrier, out)) for _ in range(4)]
        for p in procs:
            p.start()
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert results == ["ok"] * 4
        assert [p.exitcode for p in procs] == [0] * 4
        store = Store(url=url)
        assert _version(store) == [migrate.HEAD]
        store.engine.dispose()
