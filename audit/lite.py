"""Appending to a SQLite ledger through the sqlite3 module alone, for a short command.

The database layer (SQLAlchemy) costs a command more start-up time than the rest of its work;
a command that only appends a few events and reads the size (`tachiai approve`) uses this
instead. What an append writes is decided in one place for both: `stage` builds the rows and
`tail` reads the frontier, here and in `audit.ledger`, which runs the same statements through
its engine (tests/audit/test_lite.py compares the two on one ledger). Only an existing ledger is
opened: creating one (tables, guards, origin) stays with `audit.ledger.Ledger`.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from audit.errors import LedgerIntegrityError, LedgerStorageError
from audit.events import Draft, check_draft, encode
from audit.tiles import Frontier

#: The statements of an append, with ? for the values (the hot path: plain driver statements).
INSERT_EVENT = "INSERT INTO ledger_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
INSERT_NODE = "INSERT INTO ledger_nodes VALUES (?, ?, ?)"
INSERT_HEAD = "INSERT INTO ledger_heads VALUES (?, ?, ?)"
HEAD_ROW = "SELECT size, frontier FROM ledger_heads ORDER BY size DESC LIMIT 1"
LAST_SEQ = "SELECT MAX(seq) FROM ledger_events"
SIZE = "SELECT MAX(size) FROM ledger_heads"
ORIGIN = "SELECT value FROM ledger_meta WHERE name = 'origin'"
_KEY_CHUNK = 500


def known_keys_sql(count: int, mark: str = "?") -> str:
    """SELECT key, seq of `count` keys."""
    return (f"SELECT key, seq FROM ledger_events WHERE key IN "  # noqa: S608
            f"({', '.join([mark] * count)})")


def known_keys(run: Callable[[str, tuple[str, ...]], Sequence[Any]], keys: Sequence[str],
               mark: str = "?") -> dict[str, int]:
    """The seq of each of `keys` already in the ledger, read with `run(sql, params)`."""
    out: dict[str, int] = {}
    for i in range(0, len(keys), _KEY_CHUNK):
        chunk = tuple(keys[i : i + _KEY_CHUNK])
        out.update({str(k): int(s) for k, s in run(known_keys_sql(len(chunk), mark), chunk)})
    return out


def tail(head: Sequence[Any] | None, last: Any) -> Frontier:
    """The frontier after the last commit, from the last head row (size, frontier) and the
    last event's seq.

    Raises:
        LedgerIntegrityError: the events and the last tree head disagree, or the head is
            malformed.
    """
    size = 0 if head is None else int(head[0])
    if (last is None and size) or (last is not None and int(last) != size - 1):
        raise LedgerIntegrityError(
            f"the ledger's events end at {last} but its last tree head records {size} "
            "events: run `tachiai audit verify`",
            seq=size,
        )
    if head is None:
        return Frontier()
    blob = bytes(head[1])
    try:
        return Frontier(size, [blob[i : i + 32] for i in range(0, len(blob), 32)])
    except ValueError as exc:
        raise LedgerIntegrityError(f"the tree head at size {size} is malformed", seq=size) from exc


Staged = tuple[list[tuple[Any, ...]], list[tuple[int, int, bytes]], tuple[int, bytes, int] | None]


def stage(batches: Sequence[Sequence[tuple[Draft, bytes]]], known: dict[str, int],
          frontier: Frontier) -> tuple[list[list[int]], Staged]:
    """What appending `batches` of (draft, checked data) after `frontier` writes: each batch's
    seqs (a key already in the ledger keeps its seq and is not written again), and the event
    rows, the tree nodes completed and the new head row (None when nothing is new).

    `known` (key → seq) is updated with the new events; `frontier` is extended.
    """
    size = frontier.size
    rows: list[tuple[Any, ...]] = []
    leaves: list[bytes] = []
    seqs: list[list[int]] = []
    for drafts in batches:
        mine: list[int] = []
        for draft, data in drafts:
            if draft.key in known:
                mine.append(known[draft.key])
                continue
            body = encode(size, draft, data)
            leaf = hashlib.sha256(b"\x00" + body).digest()
            rows.append((size, draft.key, draft.time_ns, draft.kind, draft.subject or "",
                         draft.agreement or "", draft.actor or "", body, leaf))
            leaves.append(leaf)
            known[draft.key] = size
            mine.append(size)
            size += 1
        seqs.append(mine)
    if not rows:
        return seqs, ([], [], None)
    done = frontier.extend(leaves)
    head = (size, b"".join(frontier.hashes), max(r[2] for r in rows))
    return seqs, (rows, done, head)


class LiteLedger:
    """An existing SQLite ledger, opened with the sqlite3 module: append and size only.

    The connection has the settings of `audit.database.make_engine` for SQLite: WAL,
    synchronous=FULL (a commit survives power loss), a busy wait, and BEGIN IMMEDIATE for a
    write, so concurrent writers queue rather than fork the sequence.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, path: Path) -> LiteLedger | None:
        """The ledger at `path`, or None when there is none yet to append to (then
        `audit.ledger.Ledger.open` creates it).

        Raises:
            LedgerStorageError: the file cannot be opened.
        """
        if not path.is_file():
            return None
        try:
            conn = sqlite3.connect(path, timeout=60, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 60000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            origin = conn.execute(ORIGIN).fetchone()
        except sqlite3.Error as exc:
            if "no such table" in str(exc):
                return None
            raise LedgerStorageError(f"cannot open the ledger: {exc}") from exc
        if origin is None:
            conn.close()
            return None
        return cls(conn)

    def close(self) -> None:
        self._conn.close()

    def size(self) -> int:
        """The number of events, as the last tree head records it.

        Raises:
            LedgerStorageError: the database cannot be read.
        """
        try:
            value = self._conn.execute(SIZE).fetchone()[0]
        except sqlite3.Error as exc:
            raise LedgerStorageError(f"cannot read the ledger: {exc}") from exc
        return int(value or 0)

    def append(self, drafts: Sequence[Draft]) -> list[int]:
        """As `audit.ledger.Ledger.append`: the drafts' seqs, in order; durable when this
        returns; a key already in the ledger keeps its seq.

        Raises:
            ValueError: for a draft that cannot be stored exactly (nothing is appended).
            LedgerStorageError: when the database refuses the write.
            LedgerIntegrityError: when the stored head and events disagree.
        """
        if not drafts:
            return []
        checked = [(d, check_draft(d)) for d in drafts]
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                known = known_keys(lambda sql, p: conn.execute(sql, p).fetchall(),
                                   [d.key for d, _ in checked])
                frontier = tail(conn.execute(HEAD_ROW).fetchone(),
                                conn.execute(LAST_SEQ).fetchone()[0])
                (seqs,), (rows, done, head) = stage([checked], known, frontier)
                if head is not None:
                    conn.executemany(INSERT_EVENT, rows)
                    if done:
                        conn.executemany(INSERT_NODE, done)
                    conn.execute(INSERT_HEAD, head)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise LedgerStorageError(f"cannot append to the ledger: {exc}") from exc
        return seqs
