"""The ledger (監査ログ): an append-only sequence of events, summarised by an RFC 9162 tree.

Appends are group-committed: concurrent callers in one process share one transaction, and
processes queue on the database's write lock (BEGIN IMMEDIATE; an advisory lock on PostgreSQL),
so the sequence never forks or gaps. Each commit stores the events' exact bytes, the tree nodes
it completes and the new frontier. On PostgreSQL the tables are created under a lock too, so
any number of processes may connect at once. This module never reads gateway state or policies.
Over 400 lines for one reason: append, group commit and tree update are one transaction, and
are read together to see that the sequence can neither fork nor gap.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import SQLAlchemyError

from audit import schema
from audit.checkpoints import SignedCheckpoint
from audit.database import make_engine, settled_copy, sqlite_url
from audit.errors import LedgerIntegrityError, LedgerStorageError
from audit.events import Draft, Event, check_draft
from audit.lite import HEAD_ROW, LAST_SEQ, HashReader, event_at, known_keys, stage, tail
from audit.notes import NoteVerifier
from audit.tiles import Frontier
from audit.verify import VerifyReport, verify

log = logging.getLogger(__name__)

ORIGIN_PREFIX = "tachiai/ledger/"


@dataclass
class _Ticket:
    """One caller's drafts waiting in the group commit, and what became of them."""

    drafts: list[tuple[Draft, bytes]]
    seqs: list[int] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False
    # Set when the ticket is done, or when its caller is handed the lead: exactly one waiter
    # wakes per hand-over (no thundering herd of every waiting thread).
    wake: threading.Event = field(default_factory=threading.Event)


class Ledger:
    """Append, read, prove and verify the events of one ledger database."""

    def __init__(self, engine: Engine, *, cleanup: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self._cleanup = cleanup
        self._lock = threading.Lock()
        self._queue: list[_Ticket] = []
        self._committing = False

    @classmethod
    def open(
        cls, path: Path, *, read_only: bool = False, create: bool = True, snapshot: bool = False
    ) -> Ledger:
        """Open (and unless read-only, create) the ledger at `path`.

        `snapshot` is for an auditor's copy: read-only, no locks, nothing written beside it.

        Raises:
            LedgerStorageError: when the file is missing (read-only) or cannot be opened.
        """
        if (read_only or snapshot) and not path.is_file():
            raise LedgerStorageError(f"no ledger at {path}")
        cleanup = None
        if snapshot:
            path, cleanup = settled_copy(path)
        engine = make_engine(
            sqlite_url(path, read_only=read_only, snapshot=snapshot),
            read_only=read_only or snapshot,
        )
        ledger = cls(engine, cleanup=cleanup)
        if create and not (read_only or snapshot):
            ledger.create()
        return ledger

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        read_only: bool = False,
        create: bool = True,
        password_file: Path | None = None,
    ) -> Ledger:
        """Open a ledger by database URL (PostgreSQL: `postgresql://…`, run with psycopg 3).

        The password comes from `password_file` or libpq's environment, never from the URL.
        Any number of processes may connect and create at once (see `create`).

        Raises:
            LedgerStorageError: for a password in the URL, or when the tables cannot be created.
        """
        ledger = cls(make_engine(url, read_only=read_only, password_file=password_file))
        if create and not read_only:
            ledger.create()
        return ledger

    def close(self) -> None:
        self.engine.dispose()
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None

    def create(self) -> None:
        """Create the tables, the append-only guards and the log's origin (idempotent).

        On PostgreSQL everything happens in one transaction under an advisory lock, so several
        processes may create at once: the first creates, the others find it done.

        Raises:
            LedgerStorageError: when the database refuses.
        """
        try:
            if self.engine.dialect.name == "postgresql":
                with self.engine.begin() as conn:
                    conn.exec_driver_sql(schema.POSTGRES_SCHEMA_LOCK)
                    schema.metadata.create_all(conn, tables=list(schema.TABLES))
                    schema.create_postgres_guards(conn)
                    _ensure_origin(conn)
                return
            schema.metadata.create_all(self.engine, tables=list(schema.TABLES))
            with self.engine.begin() as conn:
                for ddl in schema.SQLITE_GUARDS:
                    conn.exec_driver_sql(ddl)
                _ensure_origin(conn)
        except SQLAlchemyError as exc:
            raise _storage_error("create the ledger tables", exc) from exc

    # -- writing ---------------------------------------------------------------------------

    def append(self, drafts: Sequence[Draft]) -> list[int]:
        """Append drafts and return their seqs, in order; durable when this returns.

        A draft whose key is already in the ledger is not appended again: its existing seq is
        returned, which makes a retry after a crash safe. Callers in other threads that append
        at the same moment share one transaction and one fsync (group commit).

        Raises:
            ValueError: for a draft that cannot be stored exactly (nothing is appended).
            LedgerStorageError: when the database refuses the write.
        """
        if not drafts:
            return []
        ticket = _Ticket([(d, check_draft(d)) for d in drafts])
        with self._lock:
            self._queue.append(ticket)
            leader = not self._committing
            self._committing = True
        if not leader:
            ticket.wake.wait()  # done by a leader, or handed the lead
        if not ticket.done:
            # Lead: commit everyone waiting now, then hand the lead to the next waiter.
            with self._lock:
                batch, self._queue = self._queue, []
            try:
                self._commit(batch)
            finally:
                with self._lock:
                    if self._queue:
                        self._queue[0].wake.set()
                    else:
                        self._committing = False
        if ticket.error is not None:
            raise ticket.error
        return ticket.seqs

    def _commit(self, batch: list[_Ticket]) -> None:
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(schema.POSTGRES_WRITER_LOCK)
                known = _known_keys(conn, [d.key for t in batch for d, _ in t.drafts])
                seqs, (rows, done, head) = stage([t.drafts for t in batch], known, _tail(conn))
                for ticket, mine in zip(batch, seqs, strict=True):
                    ticket.seqs = mine
                if head is not None:
                    # Driver-level statements: this is the hot path, and these are fixed.
                    mark = _mark(conn)
                    conn.exec_driver_sql(_insert("ledger_events", 9, mark), rows)
                    if done:
                        conn.exec_driver_sql(_insert("ledger_nodes", 3, mark), done)
                    conn.exec_driver_sql(_insert("ledger_heads", 3, mark), [head])
        except (SQLAlchemyError, LedgerIntegrityError, ValueError) as exc:
            error: BaseException = exc
            if isinstance(exc, SQLAlchemyError):
                error = _storage_error("append to the ledger", exc)
                error.__cause__ = exc
            _finish(batch, error)
            return
        except BaseException as exc:  # e.g. KeyboardInterrupt: no follower may wait forever
            _finish(batch, exc)
            raise
        _finish(batch, None)

    def add_checkpoint(self, signed: SignedCheckpoint) -> None:
        """Keep a copy of a signed checkpoint in the ledger (external copies matter more).

        Raises:
            LedgerStorageError: when the database refuses the write.
        """
        cp = signed.checkpoint
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    schema.checkpoints.insert(),
                    [{"size": cp.size, "time_ns": cp.time_ns, "note": signed.note}],
                )
        except SQLAlchemyError as exc:
            raise _storage_error("store a checkpoint", exc) from exc

    # -- reading ---------------------------------------------------------------------------

    @property
    def origin(self) -> str | None:
        """The log's name in its checkpoints; None for a ledger made before it had one."""
        with self._reading() as conn:
            value = conn.execute(
                select(schema.meta.c.value).where(schema.meta.c.name == "origin")
            ).scalar()
        return None if value is None else str(value)

    def size(self) -> int:
        """The number of events, as the last tree head records it."""
        with self._reading() as conn:
            value = conn.execute(text("SELECT MAX(size) FROM ledger_heads")).scalar()
        return int(value or 0)

    def head(self) -> Frontier:
        """The frontier after the last commit.

        Raises:
            LedgerIntegrityError: when the stored head is malformed.
        """
        with self._reading() as conn:
            return _tail(conn)

    def events(self, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        """Events in seq order, parsed from their stored bytes (run `verify` to trust them).

        Raises:
            LedgerIntegrityError: when a stored body is not an event at its place.
        """
        sql = "SELECT seq, body FROM ledger_events WHERE seq >= :start"
        if stop is not None:
            sql += " AND seq < :stop"
        with self._reading() as conn:
            for seq, body in conn.execute(
                text(sql + " ORDER BY seq"), {"start": start, "stop": stop}
            ):
                yield event_at(int(seq), bytes(body))

    def event(self, seq: int) -> tuple[Event, bytes]:
        """One event and its stored leaf hash.

        Raises:
            LedgerIntegrityError: when there is no event `seq` or it is malformed.
        """
        with self._reading() as conn:
            row = conn.execute(
                text("SELECT body, leaf_hash FROM ledger_events WHERE seq = :s"), {"s": seq}
            ).first()
        if row is None:
            raise LedgerIntegrityError(f"event {seq} is not in the ledger", seq=seq)
        return event_at(seq, bytes(row[0])), bytes(row[1])

    def checkpoints(self) -> list[tuple[str, str]]:
        """The signed checkpoints kept in the ledger, as (note, source), oldest first."""
        with self._reading() as conn:
            rows = conn.execute(text("SELECT id, note FROM ledger_checkpoints ORDER BY id"))
            return [(str(note), f"the ledger (checkpoint row {i})") for i, note in rows]

    @contextmanager
    def reader(self) -> Iterator[HashReader]:
        """One read transaction for many hash look-ups (proofs, past roots).

        Raises:
            LedgerStorageError: when the database cannot be read.
        """
        with self._reading() as conn:
            yield HashReader(lambda sql, params: conn.exec_driver_sql(sql, params).all(),
                             _mark(conn))

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise _storage_error("read the ledger", exc) from exc

    def verify(
        self,
        progress: Callable[[int], None] | None = None,
        *,
        checkpoints: Sequence[tuple[str, str]] = (),
        key: NoteVerifier | None = None,
        deep: bool = False,
    ) -> VerifyReport:
        """Recompute everything and check every checkpoint (see `audit.verify.verify`).

        Raises:
            LedgerIntegrityError: naming the first bad event, tree head or checkpoint.
            LedgerStorageError: when the database cannot be read.
        """
        return verify(self, progress=progress, checkpoints=checkpoints, key=key, deep=deep)


def _ensure_origin(conn: Connection) -> None:
    if conn.execute(select(schema.meta.c.value).where(schema.meta.c.name == "origin")).first():
        return
    # A fresh name per ledger, so a checkpoint of one log never passes for another's (C2SP:
    # the origin identifies the log).
    conn.execute(
        schema.meta.insert(), [{"name": "origin", "value": ORIGIN_PREFIX + secrets.token_hex(8)}]
    )


def _finish(batch: list[_Ticket], error: BaseException | None) -> None:
    for ticket in batch:
        ticket.error, ticket.done = error, True
        ticket.wake.set()


def _storage_error(doing: str, exc: SQLAlchemyError) -> LedgerStorageError:
    # The driver's words ("database is locked", "unable to open database file") help the
    # operator and carry no event content.
    return LedgerStorageError(f"cannot {doing}: {getattr(exc, 'orig', None) or exc}")


def _known_keys(conn: Connection, keys: list[str]) -> dict[str, int]:
    return known_keys(lambda sql, params: list(conn.exec_driver_sql(sql, params)), keys,
                      _mark(conn))


def _mark(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _insert(table: str, columns: int, mark: str) -> str:
    return f"INSERT INTO {table} VALUES ({', '.join([mark] * columns)})"  # noqa: S608


def _tail(conn: Connection) -> Frontier:
    return tail(conn.exec_driver_sql(HEAD_ROW).first(), conn.exec_driver_sql(LAST_SEQ).scalar())
