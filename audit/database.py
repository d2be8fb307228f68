"""Database engines for durable, append-only logs: SQLite (embedded) or PostgreSQL.

SQLite runs in WAL mode with synchronous=FULL (a commit survives power loss), waits for locks
instead of failing, and starts every write transaction (`engine.begin()`) with BEGIN IMMEDIATE so
concurrent writers queue up rather than fork the sequence; reads begin deferred and never wait.
A read-only engine never writes the file it reads; a snapshot engine (an auditor's copy) also
takes no locks and creates no -wal or -shm file. PostgreSQL is reached with psycopg 3; its
password comes from a file or libpq's environment (PGPASSWORD, PGPASSFILE), never from the URL.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import QueuePool

from audit.errors import LedgerStorageError

log = logging.getLogger(__name__)

_URI_PREFIX = "sqlite:///file:"
_WRITE = "tachiai.write"  # marks a pooled connection inside engine.begin()
_BUSY_SECONDS = 60.0  # how long a writer waits for the write lock (a Store may set its own)
_POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg", "postgres")


def is_postgres_url(url: str) -> bool:
    """True for a PostgreSQL URL (`postgresql://…`, `postgresql+psycopg://…`)."""
    return url.split("://", 1)[0] in _POSTGRES_SCHEMES and "://" in url


def postgres_url(url: str) -> URL:
    """The URL for psycopg 3, refusing one that carries a password.

    A URL ends up in configuration files, process lists and logs; a password in it would too.

    Raises:
        LedgerStorageError: for a password in the URL, or a URL that is not PostgreSQL's.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise LedgerStorageError(f"not a database URL: {exc}") from None
    if parsed.drivername not in _POSTGRES_SCHEMES:
        raise LedgerStorageError(f"not a PostgreSQL URL: {parsed.drivername}://…")
    if parsed.password is not None:
        raise LedgerStorageError(
            "the database URL carries a password: remove it from the URL and give it in a "
            "password file, or in PGPASSWORD or a PGPASSFILE for libpq"
        )
    return parsed.set(drivername="postgresql+psycopg")


def sqlite_url(path: Path, *, read_only: bool = False, snapshot: bool = False) -> str:
    """A URL for `make_engine`. `snapshot`: a copy nobody writes (SQLite's immutable=1)."""
    if read_only or snapshot:
        flags = "mode=ro&immutable=1" if snapshot else "mode=ro"
        return f"{_URI_PREFIX}{urllib.parse.quote(str(path.resolve()))}?{flags}"
    return f"sqlite:///{path.resolve()}"


def make_engine(url: str, *, read_only: bool = False, password_file: Path | None = None) -> Engine:
    """An engine with the settings a durable log needs, for a SQLite or PostgreSQL URL.

    `password_file` (PostgreSQL): a file holding the password on its first line.

    Raises:
        LedgerStorageError: for a PostgreSQL URL with a password in it, or an unreadable
            password file.
    """
    if not url.startswith("sqlite"):
        return _postgres_engine(url, read_only=read_only, password_file=password_file)
    target = url.removeprefix("sqlite:///")
    uri = url.startswith(_URI_PREFIX)
    read_only = read_only or (uri and "mode=ro" in url)

    def connect() -> sqlite3.Connection:
        # Our own connect: SQLAlchemy's URL parsing would mangle %-escapes in file URIs.
        return sqlite3.connect(target, uri=uri, timeout=_BUSY_SECONDS,
                               check_same_thread=False)

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
        cur.execute(f"PRAGMA busy_timeout = {int(_BUSY_SECONDS * 1000)}")
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

    # This process's writers queue here, in turn, before BEGIN IMMEDIATE: a writer that finds
    # SQLite's lock taken sleeps in its busy handler by growing steps (up to 100 ms) and may
    # oversleep a lock that was free again after one commit, while a waiter on this lock wakes
    # when it is given back. Other processes still meet SQLite's lock and busy timeout. A
    # waiter gives up queueing after the busy timeout and then waits in SQLite as before, so a
    # thread that nests write transactions ends as it did (locked), never hangs.
    writers = threading.RLock()

    @contextlib.contextmanager
    def begin_write() -> Iterator[Connection]:
        queued = not read_only and writers.acquire(timeout=_BUSY_SECONDS)
        try:
            with engine.connect() as conn:
                conn.info[_WRITE] = not read_only
                try:
                    with conn.begin():
                        yield conn
                finally:
                    conn.info.pop(_WRITE, None)
        finally:
            if queued:
                writers.release()

    # Engine.begin() has the same contract; SQLAlchemy's own DDL (create_all) uses it too.
    setattr(engine, "begin", begin_write)  # noqa: B010
    return engine


def _postgres_engine(url: str, *, read_only: bool, password_file: Path | None) -> Engine:
    connect_args: dict[str, Any] = {}
    if password_file is not None:
        try:
            lines = password_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise LedgerStorageError(
                f"cannot read the database password file {password_file}: {exc}"
            ) from None
        if not lines or not lines[0]:
            raise LedgerStorageError(f"the database password file {password_file} is empty")
        connect_args["password"] = lines[0]
    if read_only:
        # The server itself refuses any write from this engine, whatever a caller tries.
        connect_args["options"] = "-c default_transaction_read_only=on"
    return create_engine(postgres_url(url), pool_pre_ping=True, connect_args=connect_args)


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
