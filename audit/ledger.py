"""The ledger (監査ログ): an append-only, hash-chained, Merkle-summarised sequence of events.

Each event's canonical bytes name the hash of the one before (a chain) and are a leaf of an
RFC 9162 Merkle tree whose head is recorded with every commit. The database refuses UPDATE and
DELETE; appends are serialised by the database's write lock, so concurrent writers (threads or
processes) never fork or gap the sequence. This module never reads gateway state or policies.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, LargeBinary, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import BigInteger, Column, Field, SQLModel

from audit.database import make_engine, sqlite_url
from audit.errors import LedgerIntegrityError, LedgerStorageError
from audit.events import Draft, Event, decode, encode
from audit.merkle import CompactTree, leaf_hash

log = logging.getLogger(__name__)

GENESIS_PREV = bytes(32)


class LedgerEvent(SQLModel, table=True):
    """A stored event: the hashed bytes plus indexed copies of fields for queries."""

    __tablename__ = "ledger_events"
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    key: str = Field(unique=True)
    time_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(index=True)
    subject: str | None = Field(default=None, index=True)
    agreement: str | None = Field(default=None, index=True)
    actor: str | None = Field(default=None, index=True)
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LedgerHead(SQLModel, table=True):
    """The tree head after each commit: size, root, and the frontier to resume appending."""

    __tablename__ = "ledger_heads"
    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    frontier: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    time_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


_TABLES = [LedgerEvent.__table__, LedgerHead.__table__]  # type: ignore[attr-defined]

_SQLITE_GUARDS = [
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
    "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
    for table in ("ledger_events", "ledger_heads")
    for op in ("UPDATE", "DELETE")
]


@dataclass(frozen=True)
class VerifyReport:
    """What a full verification found: the size checked and the root it recomputed."""

    size: int
    root: bytes


class Ledger:
    """Append, read and verify the events of one ledger database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, path: Path, *, read_only: bool = False, create: bool = True) -> Ledger:
        """Open (and unless read-only, create) the ledger at `path`.

        Raises:
            LedgerStorageError: when the file is missing (read-only) or cannot be opened.
        """
        if read_only and not path.is_file():
            raise LedgerStorageError(f"no ledger at {path}")
        ledger = cls(make_engine(sqlite_url(path, read_only=read_only), read_only=read_only))
        if create and not read_only:
            ledger.create()
        return ledger

    def create(self) -> None:
        """Create the tables and the triggers that make them append-only (idempotent)."""
        try:
            SQLModel.metadata.create_all(self.engine, tables=_TABLES)
            if self.engine.dialect.name == "sqlite":
                with self.engine.begin() as conn:
                    for ddl in _SQLITE_GUARDS:
                        conn.exec_driver_sql(ddl)
        except SQLAlchemyError as exc:
            raise LedgerStorageError(f"cannot create the ledger tables: {exc.__class__.__name__}") \
                from exc

    def append(self, drafts: Sequence[Draft]) -> list[int]:
        """Append drafts in one transaction (a group commit); return their seqs.

        Drafts whose key is already in the ledger are not appended again; their existing seq is
        returned, which makes a retry after a crash safe.

        Raises:
            LedgerStorageError: when the database refuses the write.
        """
        if not drafts:
            return []
        try:
            with self.engine.begin() as conn:
                known = self._known_keys(conn, [d.key for d in drafts])
                size, tree, prev = self._tail(conn)
                seqs: list[int] = []
                rows: list[dict[str, object]] = []
                for draft in drafts:
                    if draft.key in known:
                        seqs.append(known[draft.key])
                        continue
                    body = encode(size, prev, draft)
                    leaf = leaf_hash(body)
                    rows.append({
                        "seq": size, "key": draft.key, "time_ns": draft.time_ns,
                        "kind": draft.kind, "subject": draft.subject,
                        "agreement": draft.agreement, "actor": draft.actor,
                        "body": body, "leaf_hash": leaf,
                    })
                    known[draft.key] = size
                    seqs.append(size)
                    tree.append(leaf)
                    prev, size = leaf, size + 1
                if rows:
                    conn.execute(LedgerEvent.__table__.insert(), rows)  # type: ignore[attr-defined]
                    conn.execute(LedgerHead.__table__.insert(), [{  # type: ignore[attr-defined]
                        "size": size, "root": tree.root(),
                        "frontier": b"".join(tree.frontier()),
                        "time_ns": max(d.time_ns for d in drafts),
                    }])
            return seqs
        except SQLAlchemyError as exc:
            raise LedgerStorageError(f"cannot append to the ledger: {exc.__class__.__name__}") \
                from exc

    def size(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(text("SELECT COALESCE(MAX(size), 0) FROM ledger_heads")).scalar()
        return int(value or 0)

    def events(self, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        """Events in seq order, parsed from their stored bytes.

        Raises:
            LedgerIntegrityError: when a stored body is not a canonical event.
        """
        sql = "SELECT seq, body FROM ledger_events WHERE seq >= :start"
        if stop is not None:
            sql += " AND seq < :stop"
        with self.engine.connect() as conn:
            for seq, body in conn.execute(text(sql + " ORDER BY seq"),
                                          {"start": start, "stop": stop}):
                try:
                    yield decode(bytes(body))
                except ValueError as exc:
                    raise LedgerIntegrityError(f"event {seq}: {exc}", seq=seq) from exc

    def verify(self, progress: Callable[[int], None] | None = None) -> VerifyReport:
        """Recompute every hash and the chain; check every recorded tree head.

        Raises:
            LedgerIntegrityError: naming the first bad event (seq) or tree head.
        """
        tree = CompactTree()
        prev = GENESIS_PREV
        with self.engine.connect() as conn:
            heads = {int(s): bytes(r) for s, r in conn.execute(
                text("SELECT size, root FROM ledger_heads"))}
            rows = conn.execute(text(
                "SELECT seq, key, time_ns, kind, subject, agreement, actor, body, leaf_hash "
                "FROM ledger_events ORDER BY seq"))
            expected = 0
            for seq, key, time_ns, kind, subject, agreement, actor, body, leaf in rows:
                body = bytes(body)
                if seq != expected:
                    what = "missing" if seq > expected else "duplicated"
                    raise LedgerIntegrityError(
                        f"event {expected} is {what}: the sequence jumps to {seq}", seq=expected)
                if hashlib.sha256(b"\x00" + body).digest() != bytes(leaf):
                    raise LedgerIntegrityError(
                        f"event {seq} was changed: its bytes no longer match its hash", seq=seq)
                try:
                    event = decode(body)
                except ValueError as exc:
                    raise LedgerIntegrityError(f"event {seq} is malformed: {exc}", seq=seq) from exc
                if event.seq != seq or bytes.fromhex(event.prev) != prev:
                    raise LedgerIntegrityError(
                        f"event {seq} is out of place: it does not follow event {seq - 1} "
                        "(reordered, or an event before it was removed or replaced)", seq=seq)
                if (key, time_ns, kind, subject, agreement, actor) != (
                    event.key, event.time_ns, event.kind, event.subject, event.agreement,
                    event.actor,
                ):
                    raise LedgerIntegrityError(
                        f"event {seq}: its indexed columns differ from its hashed bytes", seq=seq)
                tree.append(bytes(leaf))
                prev = bytes(leaf)
                expected += 1
                head = heads.pop(expected, None)
                if head is not None and head != tree.root():
                    raise LedgerIntegrityError(
                        f"tree head at size {expected} does not match the events up to "
                        f"event {seq}", seq=seq)
                if progress is not None and expected % 100_000 == 0:
                    progress(expected)
        if heads:
            lost = min(heads)
            raise LedgerIntegrityError(
                f"the ledger was cut: a tree head records {lost} events but only {expected} "
                "remain", seq=expected)
        return VerifyReport(size=expected, root=tree.root())

    @staticmethod
    def _known_keys(conn: object, keys: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            marks = ", ".join(f":k{j}" for j in range(len(chunk)))
            result = conn.execute(  # type: ignore[attr-defined]
                text(f"SELECT key, seq FROM ledger_events WHERE key IN ({marks})"),  # noqa: S608
                {f"k{j}": k for j, k in enumerate(chunk)})
            out.update({str(k): int(s) for k, s in result})
        return out

    @staticmethod
    def _tail(conn: object) -> tuple[int, CompactTree, bytes]:
        row = conn.execute(text(  # type: ignore[attr-defined]
            "SELECT size, frontier FROM ledger_heads ORDER BY size DESC LIMIT 1")).first()
        if row is None:
            return 0, CompactTree(), GENESIS_PREV
        size, frontier = int(row[0]), bytes(row[1])
        hashes = [frontier[i:i + 32] for i in range(0, len(frontier), 32)]
        tree = CompactTree.from_frontier(size, hashes)
        prev = conn.execute(text(  # type: ignore[attr-defined]
            "SELECT leaf_hash FROM ledger_events WHERE seq = :s"), {"s": size - 1}).scalar()
        if prev is None:
            raise LedgerIntegrityError(f"event {size - 1} is missing at the tail", seq=size - 1)
        return size, tree, bytes(prev)
