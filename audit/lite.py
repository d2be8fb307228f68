"""A SQLite ledger through the sqlite3 module alone, for a short command: append, size, read
events, prove and verify.

The database layer (SQLAlchemy) costs a command more start-up time than the rest of its work;
`tachiai approve` (append) and `tachiai audit verify|prove` (read) use this instead. What they
do is decided in one place for both paths: `stage` builds an append's rows and `tail` reads the
frontier, `HashReader` looks up stored hashes and `audit.verify.verify_over` walks the events,
here and in `audit.ledger`, which runs the same statements through its engine
(tests/audit/test_lite.py compares the two on one ledger). Only an existing ledger is opened:
creating one (tables, guards, origin) stays with `audit.ledger.Ledger`.
"""

from __future__ import annotations

import hashlib
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.errors import LedgerIntegrityError, LedgerStorageError
from audit.events import Draft, Event, check_draft, encode, parse
from audit.tiles import TILE_HEIGHT, Frontier, frontier_at, range_hash

if TYPE_CHECKING:
    from audit.notes import NoteVerifier
    from audit.verify import VerifyReport

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


Rows = Callable[[str, tuple[Any, ...]], Sequence[Any]]


class HashReader:
    """Stored leaf hashes and tree nodes over one read transaction: a `tiles.NodeSource`.

    `rows(sql, params)` runs a statement whose placeholders are `mark` and returns its rows.
    """

    def __init__(self, rows: Rows, mark: str = "?") -> None:
        self._rows = rows
        self._mark = mark

    def hashes(self, level: int, start: int, stop: int) -> list[bytes]:
        """Raises: LookupError when any hash in [start, stop) of `level` is not stored."""
        m = self._mark
        if level == 0:
            sql = (
                f"SELECT seq, leaf_hash FROM ledger_events WHERE seq >= {m} "  # noqa: S608
                f"AND seq < {m} ORDER BY seq"
            )
            params: tuple[int, ...] = (start, stop)
        elif level % TILE_HEIGHT == 0:
            sql = (
                f"SELECT idx, hash FROM ledger_nodes WHERE level = {m} "  # noqa: S608
                f"AND idx >= {m} AND idx < {m} ORDER BY idx"
            )
            params = (level, start, stop)
        else:
            raise LookupError(f"level {level} is not stored")
        rows = self._rows(sql, params)
        if len(rows) != stop - start or (rows and (rows[0][0], rows[-1][0]) != (start, stop - 1)):
            raise LookupError(f"level {level} hashes {start}..{stop - 1} are not all stored")
        return [bytes(r[1]) for r in rows]

    def root_at(self, size: int) -> bytes:
        """MTH of the first `size` events (§2.1.1). Raises: LookupError (hashes missing)."""
        return range_hash(self, 0, size)

    def frontier_at(self, size: int) -> Frontier:
        """Raises: LookupError when hashes are missing."""
        return frontier_at(self, size)

    def head_frontier(self, size: int) -> bytes | None:
        """The frontier stored with the tree head at `size`, if a commit ended there."""
        found = self._rows(f"SELECT frontier FROM ledger_heads WHERE size = {self._mark}",  # noqa: S608
                           (size,))
        return bytes(found[0][0]) if found else None

    def leaf_hashes(self, start: int, stop: int) -> Iterator[tuple[int, bytes, bytes]]:
        """(seq, body, stored leaf hash) for seq in [start, stop), in order."""
        m = self._mark
        for seq, body, leaf in self._rows(
            f"SELECT seq, body, leaf_hash FROM ledger_events WHERE seq >= {m} "  # noqa: S608
            f"AND seq < {m} ORDER BY seq", (start, stop)):
            yield int(seq), bytes(body), bytes(leaf)


def event_at(seq: int, body: bytes) -> Event:
    """The event stored at `seq`, parsed from its bytes.

    Raises:
        LedgerIntegrityError: when the bytes are not an event at its place.
    """
    try:
        event = parse(body)
    except ValueError as exc:
        raise LedgerIntegrityError(f"event {seq} is malformed: {exc}", seq=seq) from exc
    if event.seq != seq:
        raise LedgerIntegrityError(
            f"event {seq} is out of place: its bytes say seq {event.seq}", seq=seq
        )
    return event


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
    """An existing SQLite ledger, opened with the sqlite3 module: append, size, events, proofs
    and verification; `audit.ledger.Ledger`'s methods of those names, with their meaning.

    The connection has the settings of `audit.database.make_engine` for SQLite: WAL,
    synchronous=FULL (a commit survives power loss), a busy wait, and BEGIN IMMEDIATE for a
    write, so concurrent writers queue rather than fork the sequence. A read-only one opens the
    file read-only (it never writes it) and reads deferred.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, *, read_only: bool = False) -> None:
        self._conn = conn
        self.path = path
        self.read_only = read_only

    @classmethod
    def open(cls, path: Path, *, read_only: bool = False) -> LiteLedger | None:
        """The ledger at `path`, or None when there is none yet (then `audit.ledger.Ledger`
        creates it, or says it is missing).

        Raises:
            LedgerStorageError: the file cannot be opened.
        """
        if not path.is_file():
            return None
        try:
            conn = _connect(path, read_only=read_only)
            origin = conn.execute(ORIGIN).fetchone()
        except sqlite3.Error as exc:
            if "no such table" in str(exc):
                return None
            raise LedgerStorageError(f"cannot open the ledger: {exc}") from exc
        if origin is None:
            conn.close()
            return None
        return cls(conn, path, read_only=read_only)

    @property
    def origin(self) -> str | None:
        """The log's name in its checkpoints."""
        with self._reading() as conn:
            row = conn.execute(ORIGIN).fetchone()
        return None if row is None else str(row[0])

    def events(self, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        """Events in seq order, parsed from their stored bytes (run `verify` to trust them).

        Raises:
            LedgerIntegrityError: when a stored body is not an event at its place.
        """
        sql = "SELECT seq, body FROM ledger_events WHERE seq >= ?"
        params: tuple[int, ...] = (start,)
        if stop is not None:
            sql, params = sql + " AND seq < ?", (start, stop)
        with self._reading() as conn:
            for seq, body in conn.execute(sql + " ORDER BY seq", params):
                yield event_at(int(seq), bytes(body))

    def event(self, seq: int) -> tuple[Event, bytes]:
        """One event and its stored leaf hash.

        Raises:
            LedgerIntegrityError: when there is no event `seq` or it is malformed.
        """
        with self._reading() as conn:
            row = conn.execute("SELECT body, leaf_hash FROM ledger_events WHERE seq = ?",
                               (seq,)).fetchone()
        if row is None:
            raise LedgerIntegrityError(f"event {seq} is not in the ledger", seq=seq)
        return event_at(seq, bytes(row[0])), bytes(row[1])

    def checkpoints(self) -> list[tuple[str, str]]:
        """The signed checkpoints kept in the ledger, as (note, source), oldest first."""
        with self._reading() as conn:
            rows = conn.execute("SELECT id, note FROM ledger_checkpoints ORDER BY id").fetchall()
        return [(str(note), f"the ledger (checkpoint row {i})") for i, note in rows]

    @contextmanager
    def reader(self) -> Iterator[HashReader]:
        """One read transaction for many hash look-ups (proofs, past roots).

        Raises:
            LedgerStorageError: when the database cannot be read.
        """
        with self._reading() as conn:
            yield HashReader(lambda sql, params: conn.execute(sql, params).fetchall())

    def verify(
        self,
        progress: Callable[[int], None] | None = None,
        *,
        checkpoints: Sequence[tuple[str, str]] = (),
        key: NoteVerifier | None = None,
        deep: bool = False,
    ) -> VerifyReport:
        """As `audit.ledger.Ledger.verify`, on a connection of its own.

        Raises:
            LedgerIntegrityError: naming the first bad event, tree head or checkpoint.
            LedgerStorageError: when the database cannot be read.
        """
        from audit.verify import verify_over

        try:
            raw = _connect(self.path, read_only=True)
        except sqlite3.Error as exc:
            raise LedgerStorageError(f"cannot read the ledger: {exc}") from exc
        try:
            return verify_over(raw, postgres=False, progress=progress, checkpoints=checkpoints,
                               key=key, deep=deep)
        finally:
            raw.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        try:
            nested = conn.in_transaction
            if not nested:
                conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if not nested:
                    conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise LedgerStorageError(f"cannot read the ledger: {exc}") from exc

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
        if self.read_only:
            raise LedgerStorageError("the ledger was opened read-only")
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


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    """A connection with the settings of `audit.database.make_engine` for SQLite."""
    if read_only:
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 60000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn
