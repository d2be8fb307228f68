"""An auditor's copy of a ledger on PostgreSQL: every row, into a new SQLite file.

The rows are read in one REPEATABLE READ transaction, a consistent snapshot even while the
daemons append, and written exactly as stored (bytes, hashes, tree heads, checkpoints, origin),
so the copy verifies against the same signed checkpoints. It never writes the source, and
never replaces a file that exists.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Final

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from audit import schema
from audit.database import make_engine, sqlite_url
from audit.errors import LedgerStorageError
from audit.ledger import Ledger

# Each table's columns in the order of its definition, so a row inserts as read.
_TABLES: Final = tuple((t.name, ", ".join(c.name for c in t.columns)) for t in schema.TABLES)
_ROWS_PER_FETCH: Final = 2000


def copy_to_sqlite(source: Ledger, dest: Path) -> int:
    """Copy `source` into a new SQLite ledger at `dest`; return the number of events copied.

    Raises:
        LedgerStorageError: when `dest` exists, or either database cannot be read or written.
    """
    if dest.exists():
        raise LedgerStorageError(f"{dest} already exists: choose a new file for the copy")
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    try:
        events = _write(source, partial)
        try:
            os.link(partial, dest)  # never replaces: fails if dest appeared meanwhile
        except FileExistsError:
            raise LedgerStorageError(f"{dest} already exists: choose a new file") from None
        except OSError as exc:
            raise LedgerStorageError(f"cannot write the copy {dest}: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return events


def _write(source: Ledger, path: Path) -> int:
    engine = make_engine(sqlite_url(path))
    events = 0
    try:
        schema.metadata.create_all(engine, tables=list(schema.TABLES))
        with (
            source.engine.connect() as read,
            engine.begin() as write,
        ):
            if read.dialect.name == "postgresql":
                read.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            for ddl in schema.SQLITE_GUARDS:
                write.exec_driver_sql(ddl)
            for table, columns in _TABLES:
                copied = _copy_table(read, write, table, columns)
                events += copied if table == schema.events.name else 0
            read.rollback()
    except SQLAlchemyError as exc:
        raise LedgerStorageError(
            f"cannot copy the ledger: {getattr(exc, 'orig', None) or exc}"
        ) from exc
    finally:
        engine.dispose()
    try:
        # One self-contained file for the auditor, no -wal beside it.
        db = sqlite3.connect(path)
        try:
            db.execute("PRAGMA journal_mode = DELETE")
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise LedgerStorageError(f"cannot finish the copy: {exc}") from exc
    return events


def _copy_table(read: Connection, write: Connection, table: str, columns: str) -> int:
    count = len(columns.split(", "))
    insert = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['?'] * count)})"  # noqa: S608
    result = read.execution_options(stream_results=True, yield_per=_ROWS_PER_FETCH).exec_driver_sql(
        f"SELECT {columns} FROM {table} ORDER BY 1"  # noqa: S608
    )
    copied = 0
    for rows in result.partitions():
        write.exec_driver_sql(
            insert, [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]
        )
        copied += len(rows)
    return copied
