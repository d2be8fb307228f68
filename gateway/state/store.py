"""The gateway's state database: transfers, approvals, and events waiting for the ledger.

A state change and the ledger event describing it are written in one transaction (an outbox);
`gateway.evidence.recorder` then moves events into the ledger, idempotently by key. So a crash
between the two never loses an event and never writes one twice. Transitions are
compare-and-set on the state they were read in. Database errors are converted to StorageError here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Table,
    UniqueConstraint,
    delete,
    select,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Field, SQLModel

from audit.database import make_engine, sqlite_url
from audit.events import Draft, check_draft
from gateway.errors import InternalError, NotFound, StateError, StorageError
from gateway.outbound.lifecycle import State, require_transition


class Transfer(SQLModel, table=True):
    """One outbound file from drop to delivery."""

    __tablename__ = "transfers"
    id: str = Field(primary_key=True)
    agreement: str = Field(index=True)
    flow: str
    recipient: str
    state: str = Field(index=True)
    provider: str = ""
    file_name: str
    source_path: str
    owner: str | None = None
    sender: str | None = None
    size: int | None = Field(default=None, sa_column=Column(BigInteger))
    sha256: str | None = None
    encoding: str | None = None
    rows: int | None = None
    reasons: str = "[]"
    sealed_sha256: str | None = None
    sealed_size: int | None = Field(default=None, sa_column=Column(BigInteger))
    delivered_path: str | None = None
    password_path: str | None = None
    attempts: int = 0
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_ns: int = Field(sa_column=Column(BigInteger, nullable=False))

    @property
    def status(self) -> State:
        return State(self.state)

    def reason_list(self) -> list[dict[str, Any]]:
        value = json.loads(self.reasons)
        return value if isinstance(value, list) else []


class Approval(SQLModel, table=True):
    """A witness's signature over a transfer's statement (立会者の承認)."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("transfer_id", "witness"),)
    id: int | None = Field(default=None, primary_key=True)
    transfer_id: str = Field(index=True)
    witness: str
    fingerprint: str
    sha256: str
    signature: str
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class PendingEvent(SQLModel, table=True):
    """An event committed with its state change, not yet appended to the ledger."""

    __tablename__ = "pending_events"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    kind: str
    time_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    subject: str | None = None
    agreement: str | None = None
    actor: str | None = None
    data: str = "{}"


_TABLES = [Transfer.__table__, Approval.__table__, PendingEvent.__table__]  # type: ignore[attr-defined]
_T = Transfer.__table__  # type: ignore[attr-defined]
_A = Approval.__table__  # type: ignore[attr-defined]
_P = PendingEvent.__table__  # type: ignore[attr-defined]


class Store:
    """Reads and writes the state database."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(sqlite_url(path))
        self._created: set[str] = set()
        self.ensure_tables("state", _TABLES)

    def ensure_tables(self, what: str, tables: Sequence[Table]) -> None:
        """Create `tables` in this database unless this store already did (or found them).

        Readiness is remembered by this object, never by an id() that a later store may reuse.

        Raises:
            StorageError: the database cannot be written.
        """
        if all(t.name in self._created for t in tables):
            return
        with self._errors(f"create the {what} tables"), self.engine.begin() as conn:
            SQLModel.metadata.create_all(conn, tables=list(tables))
        self._created.update(t.name for t in tables)

    def has_table(self, name: str) -> bool:
        """Whether the table exists, without creating it.

        Raises:
            StorageError: the database cannot be read.
        """
        if name in self._created:
            return True
        with self._errors("read the state database"):
            return bool(sa_inspect(self.engine).has_table(name))

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise StorageError(
                f"cannot {doing}: {exc.__class__.__name__}: {exc.orig}"
                if isinstance(exc, IntegrityError)
                else f"cannot {doing}: {exc.__class__.__name__}"
            ) from exc

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self._errors("write the state database"), self.engine.begin() as conn:
            yield conn

    # -- transfers --------------------------------------------------------------------------

    def create(self, transfer: Transfer, events: Sequence[Draft]) -> None:
        with self.transaction() as conn:
            conn.execute(_T.insert(), [transfer.model_dump()])
            _queue(conn, events)

    def get(self, transfer_id: str) -> Transfer:
        """Raises: NotFound when there is no such transfer."""
        with self._errors("read the state database"), self.engine.connect() as conn:
            row = conn.execute(select(_T).where(_T.c.id == transfer_id)).mappings().first()
        if row is None:
            raise NotFound(
                f"no transfer {transfer_id!r}", hint="list transfers with `tachiai transfers list`"
            )
        return Transfer.model_validate(dict(row))

    def list_transfers(self, state: State | None = None) -> list[Transfer]:
        query = select(_T).order_by(_T.c.created_ns, _T.c.id)
        if state is not None:
            query = query.where(_T.c.state == state.value)
        with self._errors("read the state database"), self.engine.connect() as conn:
            return [Transfer.model_validate(dict(r)) for r in conn.execute(query).mappings()]

    def in_states(self, states: Sequence[State]) -> list[Transfer]:
        query = (
            select(_T)
            .where(_T.c.state.in_([s.value for s in states]))
            .order_by(_T.c.created_ns, _T.c.id)
        )
        with self._errors("read the state database"), self.engine.connect() as conn:
            return [Transfer.model_validate(dict(r)) for r in conn.execute(query).mappings()]

    def transition(
        self,
        transfer: Transfer,
        target: State,
        events: Sequence[Draft],
        conn: Connection | None = None,
        **changes: Any,
    ) -> Transfer:
        """Move a transfer on from the state it was read in, with its events, atomically.

        Raises:
            StateError: when the move is not allowed or another process moved it first.
        """
        require_transition(transfer.status, target)
        values = {**changes, "state": target.value}
        if "updated_ns" not in values:
            values["updated_ns"] = max((e.time_ns for e in events), default=transfer.updated_ns)
        if conn is None:
            with self.transaction() as own:
                return self.transition(transfer, target, events, own, **changes)
        result = conn.execute(
            update(_T).where(_T.c.id == transfer.id, _T.c.state == transfer.state).values(**values)
        )
        if result.rowcount != 1:
            raise StateError(
                f"transfer {transfer.id} changed state while being processed",
                hint="look again with `tachiai transfers show ID`",
            )
        _queue(conn, events)
        return transfer.model_copy(update=values)

    def update(self, transfer: Transfer, events: Sequence[Draft], **changes: Any) -> Transfer:
        """Change fields (not the state) of a transfer still in the state it was read in.

        Raises:
            StateError: when another process moved the transfer meanwhile.
        """
        values = {
            **changes,
            "updated_ns": max((e.time_ns for e in events), default=transfer.updated_ns),
        }
        with self.transaction() as conn:
            result = conn.execute(
                update(_T)
                .where(_T.c.id == transfer.id, _T.c.state == transfer.state)
                .values(**values)
            )
            if result.rowcount != 1:
                raise StateError(f"transfer {transfer.id} changed state while being processed")
            _queue(conn, events)
        return transfer.model_copy(update=values)

    # -- approvals --------------------------------------------------------------------------

    def approvals(self, transfer_id: str) -> list[Approval]:
        with self._errors("read approvals"), self.engine.connect() as conn:
            rows = conn.execute(select(_A).where(_A.c.transfer_id == transfer_id).order_by(_A.c.id))
            return [Approval.model_validate(dict(r)) for r in rows.mappings()]

    def add_approval(self, approval: Approval, conn: Connection) -> None:
        conn.execute(_A.insert(), [approval.model_dump(exclude={"id"})])

    # -- events waiting for the ledger --------------------------------------------------------

    def record(self, events: Sequence[Draft], conn: Connection | None = None) -> None:
        """Queue events that change no state (e.g. a refused approval)."""
        if conn is not None:
            _queue(conn, events)
            return
        with self.transaction() as own:
            _queue(own, events)

    def pending(self, limit: int = 10_000) -> list[Draft]:
        with self._errors("read pending events"), self.engine.connect() as conn:
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


def _queue(conn: Connection, events: Sequence[Draft]) -> None:
    for draft in events:
        # Refused here, with the state change it describes, rather than at the ledger, where
        # one unstorable event would hold back every event behind it.
        try:
            check_draft(draft)
        except ValueError as exc:
            raise InternalError(f"event {draft.kind} cannot be stored exactly: {exc}") from exc
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
        conn.execute(_P.insert().prefix_with("OR IGNORE"), rows)
