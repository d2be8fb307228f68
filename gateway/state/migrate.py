"""Bringing the state database to this release's schema with Alembic, once, under a lock.

Every process that opens the state database calls `upgrade`. It takes a lock that every other
opener waits for (SQLite: the write lock of `BEGIN IMMEDIATE`; PostgreSQL:
`pg_advisory_xact_lock` on a fixed key), reads the version, and only when it is not `HEAD` runs
the revisions, in that one transaction; so several processes opening a new database at once
migrate it exactly once. It never changes a row of people's data.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from sqlalchemy import Connection, Engine, inspect, text

from gateway.errors import StorageError
from gateway.i18n import N_
from gateway.state import schema
from gateway.state.dberrors import converted
from gateway.state.revision import HEAD as HEAD
from gateway.state.revision import VERSION_TABLE as VERSION_TABLE

log = logging.getLogger(__name__)
# Alembic's own lines ("Context impl SQLiteImpl", one per revision) would reach every command's
# stderr on a first start; ours below says what was upgraded.
logging.getLogger("alembic").setLevel(logging.WARNING)

SCRIPTS: Final = Path(__file__).with_name("migrations")
#: The PostgreSQL advisory lock of migrations ("tcai:stm"), apart from the ledger's own keys
#: (audit.schema), so the ledger and the state may share one database.
POSTGRES_LOCK_KEY: Final = int.from_bytes(b"tcai:stm")



def _release_0_1() -> Mapping[str, Sequence[str]]:
    """Release 0.1's tables and their columns, as revision 0001 writes them out (read only when
    a database without a version is met: the revision module loads Alembic)."""
    module = importlib.import_module("gateway.state.migrations.versions.0001_release_0_1")
    tables: Mapping[str, Sequence[str]] = module.RELEASE_0_1
    return tables


def upgrade(engine: Engine) -> None:
    """Migrate the database to `HEAD` unless it is there already.

    Raises:
        StorageError: the database cannot be read or written, or holds tables of ours that no
            release of ours wrote.
    """
    # Always under the lock, even when nothing is to be done: a command then meets a database
    # another process holds locked right away, with the usual "locked" message, and a version
    # read without the lock could be one that a running upgrade is about to change.
    with converted("open the state database"), engine.begin() as conn:
        # On SQLite engine.begin() is BEGIN IMMEDIATE (audit.database): the write lock, held
        # until commit. PostgreSQL's transaction lock is freed at commit or rollback as well.
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({POSTGRES_LOCK_KEY})")
        before = current(conn)
        if before == HEAD:
            return
        release_0_1 = before is None and _accept_unversioned(conn)
        # Imported here: Alembic (and the dialects it loads) is needed only when the schema
        # changes, not at the start of every command (tests/gateway/cli/test_startup.py).
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(SCRIPTS))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        if before is None and not release_0_1:
            log.debug("created the state database at revision %s", HEAD)
        else:
            log.warning("upgraded the state database from %s to %s", before or "0.1", HEAD)


def postgres_daemon_grants(role: str) -> tuple[str, ...]:
    """The grants for the daemon's role when another role owns the state tables and runs the
    migrations (docs/operations.md): it reads and writes rows, and cannot change the schema.

    The ledger's tables get `audit.schema.postgres_daemon_grants` (read and insert only).

    Raises:
        ValueError: when `role` is not a plain SQL identifier.
    """
    if not role.isidentifier() or not role.isascii():
        raise ValueError(f"{role!r} is not a plain SQL role name")
    names = ", ".join(t.name for t in schema.ALL_TABLES)
    sequences = ", ".join(
        f"{t.name}_id_seq"
        for t in schema.ALL_TABLES
        if "id" in t.c and t.c.id.primary_key and t.c.id.type.python_type is int
    )
    return (
        f"REVOKE ALL ON {names}, {VERSION_TABLE} FROM PUBLIC",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {names} TO {role}",
        f"GRANT SELECT ON {VERSION_TABLE} TO {role}",
        f"GRANT USAGE ON SEQUENCE {sequences} TO {role}",
    )


def current(conn: Connection) -> str | None:
    """The revision the database is at; None for a new database or one of release 0.1."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()  # noqa: S608


def _accept_unversioned(conn: Connection) -> bool:
    """Check a database without a version table before revision 0001 runs on it.

    How a release 0.1 database is recognised: 0.1 did not use Alembic, so its database has no
    version table, but it has some of 0.1's tables (it made several of them lazily, on first
    use). Each table of ours that is present must have exactly 0.1's columns, in 0.1's order;
    then the database is, in effect, stamped 0001: revision 0001 creates only the tables it
    lacks and leaves the others, rows and all. A database with none of our tables is new (it
    may hold the ledger's tables: they are not ours to check).

    Returns whether it holds 0.1's tables (False: a new database).

    Raises:
        StorageError: a table of ours differs from release 0.1's.
    """
    inspector = inspect(conn)
    release_0_1 = _release_0_1()
    present = sorted(set(inspector.get_table_names()) & set(release_0_1))
    for name in present:
        columns = [c["name"] for c in inspector.get_columns(name)]
        if columns != list(release_0_1[name]):
            raise StorageError(
                N_("the state database has a table {name} that no release of tachiai wrote "
                   "(columns {columns})").format(name=name, columns=", ".join(columns)),
                hint=N_("point [database] url or gateway.state_dir at tachiai's own database, "
                        "or restore it from a backup"),
            )
    if present:
        log.warning("found a state database of release 0.1 (%d tables); upgrading it", len(present))
    return bool(present)
