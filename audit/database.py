"""Database engines for durable, append-only logs: SQLite (embedded) or PostgreSQL.

SQLite runs in WAL mode with synchronous=FULL (a commit survives power loss), waits for locks
instead of failing, and starts every write transaction (`engine.begin()`) with BEGIN IMMEDIATE so
concurrent writers queue up rather than fork the sequence; reads begin deferred and never wait.
A read-only engine never writes the file it reads; a snapshot engine (an auditor's copy) also
takes no locks and creates no -wal or -shm file.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import QueuePool

from audit.errors import LedgerStorageError

log = logging.getLogger(__name__)

_URI_PREFIX = "sqlite:///file:"
_WRITE = "tachiai.write"  # marks a pooled connection inside engine.begin()


def sqlite_url(path: Path, *, read_only: bool = False, snapshot: bool = False) -> str:
    """A URL for `make_engine`. `snapshot`: a copy nobody writes (SQLite's immutable=1)."""
    if read_only or snapshot:
        flags = "mode=ro&immutable=1" if snapshot else "mode=ro"
        return f"{_URI_PREFIX}{urllib.parse.quote(str(path.resolve()))}?{flags}"
    return f"sqlite:///{path.resolve()}"


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    """An engine with the settings a durable log needs, for a SQLite or PostgreSQL URL."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    target = url.removeprefix("sqlite:///")
    uri = url.startswith(_URI_PREFIX)
    read_only = read_only or (uri and "mode=ro" in url)

    def connect() -> sqlite3.Connection:
        # Our own connect: SQLAlchemy's URL parsing would mangle %-escapes in file URIs.
        return sqlite3.connect(target, uri=uri, timeout=60, check_same_thread=False)

    # Connections are kept open: closing the last one makes SQLite checkpoint and delete the
    # WAL, an extra fsync of the whole database per transaction.
    engine = create_engine(
        "sqlite://", creator=connect, poolclass=QueuePool, pool_size=4, max_overflow=28
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit BEGIN is DEFERRED).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 60000")
        if not read_only:
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Only `engine.begin()` (a write) takes the write lock up front. A read through
        # `engine.connect()` begins DEFERRED, so it never waits for a writer — not even one in
        # the same process, which would otherwise hold it up until the busy timeout.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get(_WRITE) else "BEGIN")

    @contextlib.contextmanager
    def begin_write() -> Iterator[Connection]:
        with engine.connect() as conn:
            conn.info[_WRITE] = not read_only
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.info.pop(_WRITE, None)

    # Engine.begin() has the same contract; SQLAlchemy's own DDL (create_all) uses it too.
    setattr(engine, "begin", begin_write)  # noqa: B010
    return engine


def settled_copy(path: Path) -> tuple[Path, Callable[[], None] | None]:
    """The file to open for a snapshot of `path`, and how to clean up after it.

    A copy with a -wal file cannot be read immutably (SQLite would ignore the WAL), so it is
    settled in a private folder first; the copy itself is never touched.

    Raises:
        LedgerStorageError: when the copy cannot be read.
    """
    wal = path.with_name(path.name + "-wal")
    if not wal.is_file() or wal.stat().st_size == 0:
        return path, None
    folder = Path(tempfile.mkdtemp(prefix="tachiai-ledger-"))
    try:
        shutil.copyfile(path, folder / "ledger.db")
        shutil.copyfile(wal, folder / "ledger.db-wal")
        db = sqlite3.connect(folder / "ledger.db")
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.execute("PRAGMA journal_mode = DELETE")
        finally:
            db.close()
    except (OSError, sqlite3.Error) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise LedgerStorageError(f"cannot read the ledger copy {path}: {exc}") from exc
    log.info("the copy has a -wal file; reading a settled private copy of it")
    return folder / "ledger.db", lambda: shutil.rmtree(folder, ignore_errors=True)
