"""The gateway's state database: opening it (migrated to this release there, once), transactions,
transfers, approvals, and events waiting for the ledger.

It is a SQLite file in the state folder (one node) or a PostgreSQL database (`[database] url`,
several nodes); what only SQLite has stays behind a check of the dialect.

A state change and the ledger event describing it are written in one transaction (an outbox);
`gateway.evidence.recorder` then moves events into the ledger, idempotently by key. So a crash
between the two never loses an event and never writes one twice. Transitions are
compare-and-set on the state they were read in. Database errors are converted to ours here
(`gateway.state.dberrors`); the tables are in `gateway.state.schema`.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Insert,
    Select,
    Table,
    bindparam,
    delete,
    event,
    func,
    select,
)
from sqlalchemy.dialects import sqlite

from audit.database import make_engine, sqlite_url
from audit.errors import LedgerStorageError
from audit.events import Draft, check_draft
from gateway.errors import InternalError, NotFound, StateError, StorageError
from gateway.i18n import N_
from gateway.state import claims, migrate, schema
from gateway.state.dberrors import converted
from gateway.state.lifecycles import State
from gateway.state.machine import compare_and_set
from gateway.state.rows import Candidate, moved_meanwhile, transition_values, update_values
from gateway.state.schema import Approval, PendingEvent, Transfer

__all__ = [
    "BUSY_TIMEOUT_SECONDS", "Approval", "Candidate", "PendingEvent", "Store", "Transfer", "Tx"
]

# A write transaction: passed through the modules that add their rows to one state change. They
# hand it back to `gateway.state` and never run SQL on it themselves.
Tx = Connection

# How long a command waits for another process's write lock before it gives up with a
# StorageError (exit 74) that says the database is locked.
BUSY_TIMEOUT_SECONDS = 60.0
# PostgreSQL: every state change notifies this channel at commit (gateway.state.wakeups).
WAKE_CHANNEL = "tachiai_work"

_T = schema.TRANSFERS
_A = schema.APPROVALS
_P = schema.PENDING
# The reads every file makes, built once with their values as parameters: neither rebuilt nor
# keyed again for SQLAlchemy's statement cache at each run.
_GET = select(_T).where(_T.c.id == bindparam("id"))
_APPROVALS_OF = select(_A).where(_A.c.transfer_id == bindparam("transfer")).order_by(_A.c.id)


class Store:
    """Reads and writes the state database."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        url: str = "",
        password_file: Path | None = None,
        busy_timeout_seconds: float = BUSY_TIMEOUT_SECONDS,
    ) -> None:
        """Open (or create) the database at `path` (SQLite) or `url` (PostgreSQL, its password
        from `password_file` or libpq's environment) and migrate it to this release.

        Raises:
            StorageError: the database cannot be opened or written, or stays locked by another
                process for longer than `busy_timeout_seconds`; a URL carrying a password.
        """
        self.path = path
        self._candidates: dict[tuple[tuple[str, ...], str, int], Select[Any]] = {}
        # The read connection of a `snapshot` this thread is inside, if any.
        self._snapshots = threading.local()
        if url:
            try:
                self.engine = make_engine(url, password_file=password_file)
            except LedgerStorageError as exc:
                raise StorageError(N_("cannot open the state database: {exc}").format(
                                       exc=exc)) from None
        elif path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.engine = make_engine(sqlite_url(path))
        else:
            raise InternalError(N_("a state database needs a path or a URL"))
        wait_ms = max(0, int(busy_timeout_seconds * 1000))
        if self.engine.dialect.name == "sqlite":

            # Registered after the engine's own listener, so it replaces its busy timeout.
            @event.listens_for(self.engine, "connect")
            def _busy(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute(f"PRAGMA busy_timeout = {wait_ms}")
                cur.close()

        elif self.engine.dialect.name == "postgresql":

            # The same promise on PostgreSQL: a row lock held too long ends in "lock timeout",
            # which gateway.state.dberrors turns into the same "locked" StorageError.
            @event.listens_for(self.engine, "connect")
            def _lock_timeout(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute(f"SET lock_timeout = {wait_ms}")
                cur.close()
                dbapi_conn.commit()

        # Every table, here and only here, under a lock (gateway.state.migrate), so two
        # processes opening a new database at once do not both create a table.
        migrate.upgrade(self.engine)

    def close(self) -> None:
        """Close the pool's connections (a command, at its end; the daemon's live with it)."""
        self.engine.dispose()

    @contextmanager
    def reading(self, doing: str = "read the state database") -> Iterator[Connection]:
        """A read-only connection (deferred: it never waits for a writer in WAL mode); inside
        a `snapshot` of this thread, the snapshot's.

        Raises:
            StorageError: the database cannot be read.
        """
        shared: Connection | None = getattr(self._snapshots, "conn", None)
        if shared is not None:
            with converted(doing):
                yield shared
            return
        with converted(doing), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def snapshot(self, doing: str = "read the state database") -> Iterator[None]:
        """Every read of this thread inside the block (`reading`, so every read method) in one
        read transaction: a step that reads several rows before it acts (a statement's link
        and duplicates, the approvals counted over it) begins one transaction, not one each
        (on SQLite it also sees them all as of one moment; PostgreSQL reads committed rows
        at each statement, as outside a snapshot).

        For reads only: a write inside the block has its own transaction as always, and a read
        after it in the block may not see it. Never record or flush events inside it: a flush
        reads the pending events through the snapshot, never sees them moved, and would append
        them again and again. Nothing outlives the block.

        Raises:
            StorageError: the database cannot be read.
        """
        if getattr(self._snapshots, "conn", None) is not None:
            yield  # inside one already: its moment
            return
        with converted(doing), self.engine.connect() as conn:
            self._snapshots.conn = conn
            try:
                yield
            finally:
                self._snapshots.conn = None

    @contextmanager
    def transaction(self, doing: str = "write the state database") -> Iterator[Tx]:
        """A write transaction, committed when the block ends without an error.

        Raises:
            StorageError: the database cannot be written or stays locked.
            StateError: a uniqueness rule refused a row another process wrote first.
        """
        with converted(doing), self.engine.begin() as conn:
            yield conn

    # -- transfers --------------------------------------------------------------------------

    def create(self, transfer: Transfer, events: Sequence[Draft]) -> None:
        with self.transaction() as conn:
            conn.execute(_T.insert(), [transfer.model_dump()])
            _queue(conn, events)

    def create_intake(self, transfer: Transfer, events: Sequence[Draft],
                      still_there: Callable[[], bool]) -> bool:
        """Record the intake of one outbox entry (`transfer.source_path`), unless a worker or
        node took it in first; True when this one did.

        The entry is claimed for the transaction: on PostgreSQL a transaction-level advisory
        lock keyed on its path, so two nodes seeing the same dropped file never both record it
        (on SQLite the daemon lock makes one daemon and the write lock does the rest). Under
        it, an intake already recorded and not yet moved, or an entry gone (`still_there`
        says it was moved into the spool by the first taker), means the entry is not ours.

        Raises:
            StorageError: the database cannot be written.
        """
        with self.transaction("record an intake") as conn:
            claims.entry_claim(conn, transfer.source_path)
            taken = conn.execute(
                select(_T.c.id)
                .where(_T.c.source_path == transfer.source_path, _T.c.state == State.DROPPED.value)
                .limit(1)
            ).first()
            if taken is not None or not still_there():
                return False
            conn.execute(_T.insert(), [transfer.model_dump()])
            _queue(conn, events)
        return True

    def get(self, transfer_id: str) -> Transfer:
        """Raises: NotFound when there is no such transfer."""
        with self.reading() as conn:
            row = conn.execute(_GET, {"id": transfer_id}).mappings().first()
        if row is None:
            raise NotFound(
                N_("no transfer {id}").format(id=repr(transfer_id)),
                hint=N_("list transfers with `tachiai transfers list`")
            )
        return Transfer.model_validate(dict(row))

    def list_transfers(self, state: State | None = None) -> list[Transfer]:
        query = select(_T).order_by(_T.c.created_ns, _T.c.id)
        if state is not None:
            query = query.where(_T.c.state == state.value)
        with self.reading() as conn:
            return [Transfer.model_validate(dict(r)) for r in conn.execute(query).mappings()]

    def latest_transfers(
        self, state: State | None = None, *, since_ns: int | None = None, limit: int | None = None
    ) -> tuple[list[Transfer], int]:
        """The latest `limit` transfers (every one when None), optionally in one state and
        created at or after `since_ns`, oldest first; and how many earlier ones also match.

        Read from the index on (state,) created_ns, so a page costs the same at any size.
        """
        where: list[ColumnElement[bool]] = []
        if state is not None:
            where.append(_T.c.state == state.value)
        if since_ns is not None:
            where.append(_T.c.created_ns >= since_ns)
        query = select(_T).where(*where).order_by(_T.c.created_ns.desc(), _T.c.id.desc())
        with self.reading() as conn:
            if limit is not None:
                query = query.limit(limit)
            page = [Transfer.model_validate(dict(r)) for r in conn.execute(query).mappings()]
            total = len(page)
            if limit is not None and total == limit:
                total = int(conn.execute(select(func.count()).select_from(_T).where(*where))
                            .scalar_one())
        page.reverse()
        return page, total - len(page)

    def witnesses_of(self, transfer_ids: Sequence[str]) -> dict[str, list[str]]:
        """The witnesses whose approvals are stored, oldest first, of each of the transfers (one
        query for a page of them)."""
        found: dict[str, list[str]] = {t: [] for t in transfer_ids}
        with self.reading("read approvals") as conn:
            for i in range(0, len(transfer_ids), 500):
                rows = conn.execute(
                    select(_A.c.transfer_id, _A.c.witness)
                    .where(_A.c.transfer_id.in_(transfer_ids[i : i + 500]))
                    .order_by(_A.c.id)
                )
                for transfer_id, witness in rows:
                    found[str(transfer_id)].append(str(witness))
        return found

    def in_states(self, states: Sequence[State]) -> list[Transfer]:
        query = _in_states(tuple(s.value for s in states))
        with self.reading() as conn:
            return [Transfer.model_validate(dict(r)) for r in conn.execute(query).mappings()]

    def same_bytes(self, sha256: str, agreement: str, flow: str,
                   states: Sequence[State]) -> list[Transfer]:
        """The transfers of one agreement and flow with this SHA-256 in `states`, oldest
        first (by the index on sha256: never a read of every transfer in those states)."""
        query = _same_bytes(tuple(s.value for s in states))
        values = {"sha256": sha256, "agreement": agreement, "flow": flow}
        with self.reading() as conn:
            return [Transfer.model_validate(dict(r))
                    for r in conn.execute(query, values).mappings()]

    def transition(
        self,
        transfer: Transfer,
        target: State,
        events: Sequence[Draft],
        conn: Tx | None = None,
        *,
        keep_claim: bool = False,
        **changes: Any,
    ) -> Transfer:
        """Move a transfer on from the state it was read in, with its events, atomically.

        A transfer read with a claim moves only while the claim is still its reader's, and the
        move ends the claim (the next step is claimed anew), unless `keep_claim`: the worker
        takes the next step at once and holds its claim through it, one durable commit fewer
        (its lease and the compare-and-set on the claimant guard that step as any other).

        Raises:
            StateError: when the move is not allowed or another process moved it first.
        """
        values = transition_values(transfer, target, events, changes, keep_claim=keep_claim)
        if conn is None:
            with self.transaction() as own:
                return self.transition(transfer, target, events, own, keep_claim=keep_claim,
                                       **changes)
        compare_and_set(
            conn,
            _T,
            transfer.id,
            transfer.state,
            values,
            moved_meanwhile(transfer),
            claimant=transfer.claimed_by,
        )
        _queue(conn, events)
        return transfer.model_copy(update=values)

    def update(self, transfer: Transfer, events: Sequence[Draft], **changes: Any) -> Transfer:
        """Change fields (not the state) of a transfer still in the state it was read in.

        Raises:
            StateError: when another process moved the transfer meanwhile.
        """
        values = update_values(transfer, events, changes)
        with self.transaction() as conn:
            compare_and_set(
                conn,
                _T,
                transfer.id,
                transfer.state,
                values,
                StateError(N_("transfer {id} changed state while being processed").format(
                               id=transfer.id)),
                claimant=transfer.claimed_by,
            )
            _queue(conn, events)
        return transfer.model_copy(update=values)

    # -- claims (gateway.state.claims) -------------------------------------------------------

    def claim(self, kind: str, row_id: str, expected_state: str, owner: str,
              lease_seconds: float) -> bool:
        """Claim a transfer or holding (`kind`) before a step with side effects; True if held.

        Raises:
            StorageError: the database cannot be written.
        """
        with self.transaction("claim work") as conn:
            return claims.claim(conn, kind, row_id, expected_state, owner, lease_seconds)

    def renew(self, kind: str, row_id: str, owner: str, lease_seconds: float) -> bool:
        """Extend a claim (a heartbeat); False when it is no longer `owner`'s.

        Raises:
            StorageError: the database cannot be written.
        """
        with self.transaction("renew a claim") as conn:
            return claims.renew(conn, kind, row_id, owner, lease_seconds)

    def release(self, kind: str, row_id: str, owner: str) -> bool:
        """Give up `owner`'s claim, if it still holds one.

        Raises:
            StorageError: the database cannot be written.
        """
        with self.transaction("release a claim") as conn:
            return claims.release(conn, kind, row_id, owner)

    def release_owners(self, owners: Sequence[str]) -> int:
        """Release every claim of owners known to be dead.

        Raises:
            StorageError: the database cannot be written.
        """
        if not owners:
            return 0
        with self.transaction("release claims of stopped workers") as conn:
            return claims.release_owners(conn, owners)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Whether this process alone may act on `name` (a thing outside the database, e.g. a
        partner's pickup account) for the block: on PostgreSQL a session advisory lock, held
        on a connection of its own and never waited for (False: another node has it now); on
        SQLite always True, as the daemon lock makes one daemon.

        Raises:
            StorageError: the database cannot be reached.
        """
        if self.engine.dialect.name != "postgresql":
            yield True
            return
        with converted("take a lock"):
            conn = self.engine.connect()
        try:
            with converted("take a lock"):
                held = claims.try_exclusive(conn, name)
                conn.commit()
            try:
                yield held
            finally:
                if held:
                    with converted("give back a lock"):
                        claims.end_exclusive(conn, name)
                        conn.commit()
        finally:
            conn.close()

    def holders(self) -> list[claims.Holder]:
        with self.reading("read claims") as conn:
            return claims.holders(conn)

    def claimable(self, states: Sequence[State], owner: str,
                  limit: int = 500) -> list[Candidate]:
        """Transfers in `states` that `owner` could claim now, oldest first: only the columns
        of a `Candidate`, by a query built once per (states, owner, limit)."""
        key = (tuple(s.value for s in states), owner, limit)
        query = self._candidates.get(key)
        if query is None:
            query = self._candidates[key] = claims.candidate_keys(
                "transfer", key[0], owner, limit, Candidate.COLUMNS)
        with self.reading("list work to claim") as conn:
            return [Candidate(*row) for row in conn.execute(query, {claims.NOW: claims.now_ns()})]

    # -- approvals --------------------------------------------------------------------------

    def approvals(self, transfer_id: str) -> list[Approval]:
        with self.reading("read approvals") as conn:
            rows = conn.execute(_APPROVALS_OF, {"transfer": transfer_id})
            return [Approval.model_validate(dict(r)) for r in rows.mappings()]

    def add_approval(self, approval: Approval, conn: Tx) -> None:
        conn.execute(_A.insert(), [approval.model_dump(exclude={"id"})])

    def approvers(self, conn: Tx, transfer_id: str) -> tuple[str, ...]:
        """The witnesses whose approvals are stored, oldest first, read inside `conn`."""
        query = select(_A.c.witness).where(_A.c.transfer_id == transfer_id).order_by(_A.c.id)
        return tuple(str(r[0]) for r in conn.execute(query))

    def set_aside_approvals(self, conn: Tx, transfer_id: str, rule: str,
                            duplicate_of: str | None, now_ns: int, *,
                            keep: Collection[int] = ()) -> list[Approval]:
        """Move the transfer's approvals but those in `keep` (ids) out of those that count,
        inside `conn`, each kept with when and why (schema.APPROVALS_SET_ASIDE); return them,
        oldest first."""
        moved = [a for a in (Approval.model_validate(dict(r)) for r in conn.execute(
            select(_A).where(_A.c.transfer_id == transfer_id).order_by(_A.c.id)).mappings())
            if a.id not in keep]
        if moved:
            conn.execute(schema.APPROVALS_SET_ASIDE.insert(), [
                {**a.model_dump(exclude={"id"}), "set_aside_ns": now_ns, "rule": rule,
                 "duplicate_of": duplicate_of} for a in moved])
            conn.execute(delete(_A).where(_A.c.id.in_([a.id for a in moved])))
        return moved

    def approvals_set_aside(self, transfer_id: str) -> list[dict[str, Any]]:
        """The transfer's approvals that no longer count, oldest first, with when and why."""
        table = schema.APPROVALS_SET_ASIDE
        with self.reading("read approvals") as conn:
            rows = conn.execute(select(table).where(table.c.transfer_id == transfer_id)
                                .order_by(table.c.id))
            return [dict(r) for r in rows.mappings()]

    def unapproved_in(self, conn: Tx, transfer_id: str, state: State) -> bool:
        """Whether the transfer is still in `state` with no approval, read inside `conn` (so
        under its write lock).
        """
        if conn.execute(select(_A.c.id).where(_A.c.transfer_id == transfer_id)).first():
            return False
        found = conn.execute(select(_T.c.state).where(_T.c.id == transfer_id)).scalar()
        return found == state.value

    # -- events waiting for the ledger --------------------------------------------------------

    def record(self, events: Sequence[Draft], conn: Tx | None = None) -> None:
        """Queue events that change no state (e.g. a refused approval)."""
        if conn is not None:
            _queue(conn, events)
            return
        with self.transaction() as own:
            _queue(own, events)

    def pending(self, limit: int = 10_000) -> list[Draft]:
        with self.reading("read pending events") as conn:
            rows = conn.execute(select(_P).order_by(_P.c.id).limit(limit)).mappings().all()
        return [
            Draft(
                key=r["key"],
                kind=r["kind"],
                time_ns=r["time_ns"],
                subject=r["subject"],
                agreement=r["agreement"],
                actor=r["actor"],
                data=json.loads(r["data"]),
            )
            for r in rows
        ]

    def forget_pending(self, keys: Sequence[str], conn: Connection | None = None) -> None:
        if conn is None:
            with self.transaction() as own:
                self.forget_pending(keys, own)
            return
        for i in range(0, len(keys), 500):
            conn.execute(delete(_P).where(_P.c.key.in_(keys[i : i + 500])))


def _queue(conn: Tx, events: Sequence[Draft]) -> None:
    for draft in events:
        # Refused here, with the state change it describes, rather than at the ledger, where
        # one unstorable event would hold back every event behind it.
        try:
            check_draft(draft)
        except ValueError as exc:
            raise InternalError(N_("event {kind} cannot be stored exactly: {exc}").format(
                                    kind=draft.kind, exc=exc)) from exc
    rows: list[Mapping[str, Any]] = [
        {
            "key": e.key,
            "kind": e.kind,
            "time_ns": e.time_ns,
            "subject": e.subject,
            "agreement": e.agreement,
            "actor": e.actor,
            "data": json.dumps(dict(e.data), ensure_ascii=False, sort_keys=True),
        }
        for e in events
    ]
    if rows:
        conn.execute(insert_ignoring(conn, _P), rows)
        if conn.dialect.name == "postgresql":
            # Wakes the other nodes at commit (sent once however often a transaction asks);
            # only a hint: they poll anyway.
            conn.exec_driver_sql(f"NOTIFY {WAKE_CHANNEL}")


def insert_ignoring(conn: Tx, table: Table) -> Insert:
    """An INSERT that skips a row whose unique key is stored already (ON CONFLICT DO NOTHING,
    written the way the connection's database spells it).
    """
    return _insert_ignoring(conn.dialect.name, table)


@functools.cache
def _in_states(states: tuple[str, ...]) -> Select[Any]:
    """`Store.in_states`' query, built once per set of states (the approvals folder asks at
    every turn)."""
    return select(_T).where(_T.c.state.in_(states)).order_by(_T.c.created_ns, _T.c.id)


@functools.cache
def _same_bytes(states: tuple[str, ...]) -> Select[Any]:
    """`Store.same_bytes`' query, built once per set of states (a statement's, at every
    build), its file and flow as parameters."""
    return (select(_T)
            .where(_T.c.sha256 == bindparam("sha256"), _T.c.agreement == bindparam("agreement"),
                   _T.c.flow == bindparam("flow"), _T.c.state.in_(states))
            .order_by(_T.c.created_ns, _T.c.id))


@functools.cache
def _insert_ignoring(dialect: str, table: Table) -> Insert:
    """`insert_ignoring`, built once per database kind and table (each state change's events
    are queued with it)."""
    if dialect == "postgresql":
        # Imported here: the PostgreSQL dialect is loaded only where that database is used,
        # not at every command's start-up on SQLite (tests/gateway/cli/test_startup.py).
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()
