"""The state database on SQLite through the sqlite3 module alone, for the short commands.

Loading the database layer (SQLAlchemy) costs a command more CPU than all of its own work, so
`tachiai approve`, `reject` and `transfers list|show|statement` read and write a SQLite state
database through this instead of `gateway.state.store.Store`; the daemon, the other commands
and PostgreSQL use the Store. It offers the same methods, with the same meaning, for what
those commands do: read transfers, approvals, reply links and fan-outs; record an approval and
move a transfer on with its events (compare-and-set, in one transaction); queue and forget
events waiting for the ledger and note the ones moved. tests/gateway/state/test_lite.py runs
both on one database and compares rows, events and errors, and checks that every table and
column named here is one of `gateway.state.schema`.

It opens only a database already at this release's revision (`open` returns None otherwise:
creating or migrating one is the Store's, under its lock). The connections have the settings of
`audit.database.make_engine` for SQLite: WAL, synchronous=FULL, a busy wait, foreign keys, and
BEGIN IMMEDIATE for a write (readers begin deferred on a connection of their own, so they never
wait for a writer). Errors become ours as in the Store (`gateway.state.dberrors`).
"""

from __future__ import annotations

import json
import sqlite3
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from audit.events import Draft, check_draft
from gateway.errors import InternalError, NotFound, StateError
from gateway.i18n import N_
from gateway.state.dberrors import converted_sqlite
from gateway.state.lifecycles import State
from gateway.state.revision import HEAD, VERSION_TABLE
from gateway.state.rows import (
    Approval,
    Transfer,
    moved_meanwhile,
    transition_values,
    update_values,
)

__all__ = ["COLUMNS", "LiteStore"]

#: Every table and column this module names (a test holds them to gateway.state.schema).
COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {
    "transfers": (
        "id", "agreement", "flow", "recipient", "state", "file_name", "source_path",
        "created_ns", "updated_ns", "provider", "owner", "sender", "size", "sha256", "encoding",
        "rows", "reasons", "sealed_sha256", "sealed_size", "delivered_path", "password_path",
        "attempts", "last_error", "claimed_by", "lease_until_ns",
    ),
    "approvals": ("id", "transfer_id", "witness", "fingerprint", "sha256", "signature",
                  "created_ns"),
    "approvals_set_aside": ("id", "transfer_id", "witness", "fingerprint", "sha256",
                            "signature", "created_ns", "set_aside_ns", "rule", "duplicate_of"),
    "pending_events": ("id", "key", "kind", "time_ns", "subject", "agreement", "actor", "data"),
    "transfer_links": ("transfer", "relation", "ref", "remote", "ref_flow", "operator",
                       "created_ns"),
    "fanouts": ("id", "holding", "agreement", "flow", "grp", "split_by", "parent_sha256",
                "rows", "withheld", "created_by", "created_ns"),
    "fanout_children": ("transfer", "fanout", "member", "rows", "sha256", "size"),
    "ledger_moved": ("key", "seq", "leaf_hash"),
    "ledger_moved_since": ("id", "size"),
}

_CHUNK = 500  # keys per IN (…): well under SQLite's limit of bound values
_begun: weakref.WeakKeyDictionary[LiteStore, int] = weakref.WeakKeyDictionary()


def _cols(table: str, *, but: Sequence[str] = ()) -> str:
    return ", ".join(c for c in COLUMNS[table] if c not in but)


_TRANSFER = f"SELECT {_cols('transfers')} FROM transfers"  # noqa: S608
_APPROVAL = f"SELECT {_cols('approvals')} FROM approvals"  # noqa: S608
_PENDING_INSERT = (
    f"INSERT INTO pending_events ({_cols('pending_events', but=('id',))}) "  # noqa: S608
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


class LiteStore:
    """A SQLite state database at this release's revision, read and written with sqlite3."""

    def __init__(self, path: Path, busy_timeout_seconds: float) -> None:
        self.path = path
        self._wait_ms = max(0, int(busy_timeout_seconds * 1000))
        self._writer = self._connect()
        self._reader = self._connect()

    @classmethod
    def open(cls, path: Path, busy_timeout_seconds: float) -> LiteStore | None:
        """The database at `path`, or None when it is missing or not at this release's
        revision (then the Store opens it, creating or migrating it under its lock).

        Raises:
            StorageError: the database cannot be opened or read.
        """
        if not path.is_file():
            return None
        store = cls(path, busy_timeout_seconds)
        with store.reading("open the state database") as conn:
            found = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
                (VERSION_TABLE,)).fetchone()
            version = (conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()  # noqa: S608
                       if found else None)
        if version is None or version[0] != HEAD:
            store.close()
            return None
        return store

    def _connect(self) -> sqlite3.Connection:
        with converted_sqlite("open the state database"):
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {self._wait_ms}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def close(self) -> None:
        self._writer.close()
        self._reader.close()

    @contextmanager
    def reading(self, doing: str = "read the state database") -> Iterator[sqlite3.Connection]:
        """A read transaction (deferred: it never waits for a writer in WAL mode).

        Raises:
            StorageError: the database cannot be read.
        """
        conn = self._reader
        if conn.in_transaction:  # a read inside a read: one snapshot
            with converted_sqlite(doing):
                yield conn
            return
        with converted_sqlite(doing):
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("ROLLBACK")

    @contextmanager
    def snapshot(self, doing: str = "read the state database") -> Iterator[None]:
        """Every read inside the block in one read transaction (as `Store.snapshot`).

        Raises:
            StorageError: the database cannot be read.
        """
        with self.reading(doing):
            yield

    @contextmanager
    def transaction(self, doing: str = "write the state database") -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE), committed when the block ends without an
        error.

        Raises:
            StorageError: the database cannot be written or stays locked.
            StateError: a uniqueness rule refused a row another process wrote first.
        """
        conn = self._writer
        with converted_sqlite(doing):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- transfers --------------------------------------------------------------------------

    def get(self, transfer_id: str) -> Transfer:
        """Raises: NotFound when there is no such transfer."""
        with self.reading() as conn:
            row = conn.execute(f"{_TRANSFER} WHERE id = ?", (transfer_id,)).fetchone()
        if row is None:
            raise NotFound(
                N_("no transfer {id}").format(id=repr(transfer_id)),
                hint=N_("list transfers with `tachiai transfers list`")
            )
        return _transfer(row)

    def latest_transfers(
        self, state: State | None = None, *, since_ns: int | None = None, limit: int | None = None
    ) -> tuple[list[Transfer], int]:
        """As `Store.latest_transfers`: the latest `limit` (every one when None), optionally
        in one state and created at or after `since_ns`, oldest first; and how many earlier
        ones also match. Read from the index on (state,) created_ns."""
        where: list[str] = []
        params: list[Any] = []
        if state is not None:
            where.append("state = ?")
            params.append(state.value)
        if since_ns is not None:
            where.append("created_ns >= ?")
            params.append(since_ns)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        query = f"{_TRANSFER}{clause} ORDER BY created_ns DESC, id DESC"
        with self.reading() as conn:
            if limit is not None:
                query += " LIMIT ?"
                rows = conn.execute(query, (*params, limit)).fetchall()
            else:
                rows = conn.execute(query, params).fetchall()
            page = [_transfer(r) for r in rows]
            total = len(page)
            if limit is not None and total == limit:
                total = int(conn.execute(f"SELECT count(*) FROM transfers{clause}",  # noqa: S608
                                         params).fetchone()[0])
        page.reverse()
        return page, total - len(page)

    def witnesses_of(self, transfer_ids: Sequence[str]) -> dict[str, list[str]]:
        """The witnesses whose approvals are stored, oldest first, of each of the transfers."""
        found: dict[str, list[str]] = {t: [] for t in transfer_ids}
        with self.reading("read approvals") as conn:
            for chunk in _chunks(transfer_ids):
                rows = conn.execute(
                    f"SELECT transfer_id, witness FROM approvals WHERE transfer_id IN "  # noqa: S608
                    f"({_marks(chunk)}) ORDER BY id", chunk)
                for transfer_id, witness in rows:
                    found[str(transfer_id)].append(str(witness))
        return found

    def in_states(self, states: Sequence[State]) -> list[Transfer]:
        values = [s.value for s in states]
        with self.reading() as conn:
            rows = conn.execute(f"{_TRANSFER} WHERE state IN ({_marks(values)}) "
                                "ORDER BY created_ns, id", values).fetchall()
        return [_transfer(r) for r in rows]

    def same_bytes(self, sha256: str, agreement: str, flow: str,
                   states: Sequence[State]) -> list[Transfer]:
        values = [s.value for s in states]
        with self.reading() as conn:
            rows = conn.execute(f"{_TRANSFER} WHERE sha256 = ? AND agreement = ? AND flow = ? "
                                f"AND state IN ({_marks(values)}) ORDER BY created_ns, id",
                                [sha256, agreement, flow, *values]).fetchall()
        return [_transfer(r) for r in rows]

    def transition(
        self,
        transfer: Transfer,
        target: State,
        events: Sequence[Draft],
        conn: sqlite3.Connection | None = None,
        *,
        keep_claim: bool = False,
        **changes: Any,
    ) -> Transfer:
        """As `Store.transition`: move a transfer on from the state it was read in, with its
        events, atomically (a claimed transfer only while the claim is its reader's, which
        the move ends unless `keep_claim`).

        Raises:
            StateError: when the move is not allowed or another process moved it first.
        """
        values = transition_values(transfer, target, events, changes, keep_claim=keep_claim)
        if conn is None:
            with self.transaction() as own:
                return self.transition(transfer, target, events, own, keep_claim=keep_claim,
                                       **changes)
        _compare_and_set(conn, transfer, values, moved_meanwhile(transfer))
        _queue(conn, events)
        return transfer.model_copy(update=values)

    def update(self, transfer: Transfer, events: Sequence[Draft], **changes: Any) -> Transfer:
        """As `Store.update`: change fields (not the state) of a transfer still in the state
        it was read in.

        Raises:
            StateError: when another process moved the transfer meanwhile.
        """
        values = update_values(transfer, events, changes)
        with self.transaction() as conn:
            _compare_and_set(conn, transfer, values, StateError(
                f"transfer {transfer.id} changed state while being processed"))
            _queue(conn, events)
        return transfer.model_copy(update=values)

    # -- approvals --------------------------------------------------------------------------

    def approvals(self, transfer_id: str) -> list[Approval]:
        with self.reading("read approvals") as conn:
            rows = conn.execute(f"{_APPROVAL} WHERE transfer_id = ? ORDER BY id",
                                (transfer_id,)).fetchall()
        return [Approval.model_validate(_dict(r)) for r in rows]

    def approvals_set_aside(self, transfer_id: str) -> list[dict[str, Any]]:
        with self.reading("read approvals") as conn:
            rows = conn.execute(f"SELECT {_cols('approvals_set_aside')} "  # noqa: S608
                                "FROM approvals_set_aside WHERE transfer_id = ? ORDER BY id",
                                (transfer_id,)).fetchall()
        return [_dict(r) for r in rows]

    def add_approval(self, approval: Approval, conn: sqlite3.Connection) -> None:
        values = approval.model_dump(exclude={"id"})
        conn.execute(f"INSERT INTO approvals ({', '.join(values)}) "  # noqa: S608
                     f"VALUES ({_marks(values)})", tuple(values.values()))

    def approvers(self, conn: sqlite3.Connection, transfer_id: str) -> tuple[str, ...]:
        """The witnesses whose approvals are stored, oldest first, read inside `conn`."""
        rows = conn.execute("SELECT witness FROM approvals WHERE transfer_id = ? ORDER BY id",
                            (transfer_id,))
        return tuple(str(r[0]) for r in rows)

    def unapproved_in(self, conn: sqlite3.Connection, transfer_id: str, state: State) -> bool:
        """Whether the transfer is still in `state` with no approval, read inside `conn`."""
        if conn.execute("SELECT id FROM approvals WHERE transfer_id = ? LIMIT 1",
                        (transfer_id,)).fetchone():
            return False
        found = conn.execute("SELECT state FROM transfers WHERE id = ?",
                             (transfer_id,)).fetchone()
        return found is not None and found[0] == state.value

    # -- events waiting for the ledger --------------------------------------------------------

    def record(self, events: Sequence[Draft], conn: sqlite3.Connection | None = None) -> None:
        """Queue events that change no state (e.g. a refused approval)."""
        if conn is not None:
            _queue(conn, events)
            return
        with self.transaction() as own:
            _queue(own, events)

    def pending(self, limit: int = 10_000) -> list[Draft]:
        with self.reading("read pending events") as conn:
            rows = conn.execute(f"SELECT {_cols('pending_events', but=('id',))} "  # noqa: S608
                                "FROM pending_events ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [Draft(key=r["key"], kind=r["kind"], time_ns=r["time_ns"], subject=r["subject"],
                      agreement=r["agreement"], actor=r["actor"], data=json.loads(r["data"]))
                for r in rows]

    def forget_pending(self, keys: Sequence[str], conn: sqlite3.Connection | None = None) -> None:
        if conn is None:
            with self.transaction() as own:
                self.forget_pending(keys, own)
            return
        for chunk in _chunks(keys):
            conn.execute(f"DELETE FROM pending_events WHERE key IN ({_marks(chunk)})", chunk)  # noqa: S608

    # -- what gateway.state.moved, links and fanouts read and write ---------------------------

    def moved_begin(self, ledger_size: Callable[[], int]) -> int:
        """As `gateway.state.moved.begin`."""
        if self in _begun:
            return _begun[self]
        with self.transaction() as conn:
            row = conn.execute("SELECT size FROM ledger_moved_since WHERE id = 1").fetchone()
            if row is None:
                conn.execute("INSERT INTO ledger_moved_since (id, size) VALUES (1, ?) "
                             "ON CONFLICT DO NOTHING", (ledger_size(),))
                row = conn.execute("SELECT size FROM ledger_moved_since WHERE id = 1").fetchone()
        _begun[self] = int(row[0])
        return int(row[0])

    @staticmethod
    def moved_record(conn: sqlite3.Connection, rows: Iterable[tuple[str, int, bytes]]) -> None:
        """As `gateway.state.moved.record`."""
        conn.executemany("INSERT INTO ledger_moved (key, seq, leaf_hash) VALUES (?, ?, ?) "
                         "ON CONFLICT DO NOTHING", list(rows))

    def link_row(self, transfer_id: str) -> dict[str, Any] | None:
        """The reply link row of an outbound transfer (gateway.state.links.link_of)."""
        with self.reading("read the reply links") as conn:
            row = conn.execute(f"SELECT {_cols('transfer_links')} FROM transfer_links "  # noqa: S608
                               "WHERE transfer = ?", (transfer_id,)).fetchone()
        return None if row is None else _dict(row)

    def fanout_rows(self, fanout_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """A fan-out's row and its children's, by member (gateway.state.fanouts.get)."""
        with self.reading("read the fan-outs") as conn:
            row = conn.execute(f"SELECT {_cols('fanouts')} FROM fanouts WHERE id = ?",  # noqa: S608
                               (fanout_id,)).fetchone()
            if row is None:
                return None
            children = conn.execute(f"SELECT {_cols('fanout_children')} FROM fanout_children "  # noqa: S608
                                    "WHERE fanout = ? ORDER BY member", (fanout_id,)).fetchall()
        return _dict(row), [_dict(c) for c in children]

    def fanout_of(self, transfer_id: str) -> str | None:
        """The fan-out a transfer is a child of (gateway.state.fanouts.of_transfer)."""
        with self.reading("read the fan-outs") as conn:
            row = conn.execute("SELECT fanout FROM fanout_children WHERE transfer = ?",
                               (transfer_id,)).fetchone()
        return None if row is None else str(row[0])


def _compare_and_set(conn: sqlite3.Connection, transfer: Transfer, values: Mapping[str, Any],
                     conflict: StateError) -> None:
    """As `gateway.state.machine.compare_and_set` on the transfers table."""
    unknown = set(values) - set(COLUMNS["transfers"])
    if unknown:  # a bug, as the Store's "unconsumed column names": never built into the SQL
        raise ValueError(f"no transfer column {sorted(unknown)}")
    sql = (f"UPDATE transfers SET {', '.join(f'{k} = ?' for k in values)} "  # noqa: S608
           "WHERE id = ? AND state = ?")
    params = [*values.values(), transfer.id, transfer.state]
    if transfer.claimed_by is not None:
        sql += " AND claimed_by = ?"
        params.append(transfer.claimed_by)
    if conn.execute(sql, params).rowcount != 1:
        raise conflict


def _queue(conn: sqlite3.Connection, events: Sequence[Draft]) -> None:
    """As the Store's: check each draft, then insert those whose key is not queued yet."""
    for draft in events:
        try:
            check_draft(draft)
        except ValueError as exc:
            raise InternalError(N_("event {kind} cannot be stored exactly: {exc}").format(
                                    kind=draft.kind, exc=exc)) from exc
    conn.executemany(_PENDING_INSERT, [
        (e.key, e.kind, e.time_ns, e.subject, e.agreement, e.actor,
         json.dumps(dict(e.data), ensure_ascii=False, sort_keys=True))
        for e in events
    ])


def _transfer(row: sqlite3.Row) -> Transfer:
    return Transfer.model_validate(_dict(row))


def _dict(row: sqlite3.Row) -> dict[str, Any]:
    return dict(zip(row.keys(), row, strict=True))


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def _marks(values: Sized) -> str:
    return ", ".join("?" * len(values))
