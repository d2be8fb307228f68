"""Holdings (保有データ) until certified deleted or returned (消去・返却), and reply links.

arriving ─▶ received ─▶ opened ─▶ in_use ─▶ deleted | returned; arriving ─▶ refused ─▶ arriving.
Each state change and its ledger event are one transaction, compare-and-set on the state read,
as `gateway.state.store` does for transfers. It holds names, ids and hashes, never personal data.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import BigInteger, Column, Connection, UniqueConstraint, select
from sqlalchemy import update as sql_update
from sqlmodel import Field, SQLModel

from audit.events import Draft
from gateway.errors import NotFound, StateError, StorageError
from gateway.inbound import erasure
from gateway.runtime import Runtime
from gateway.state import clock

log = logging.getLogger(__name__)


class HoldingState(StrEnum):
    ARRIVING = "arriving"  # an intake intent: files moving into our folder, not yet verified
    RECEIVED = "received"  # verified, encrypted at rest, nobody has opened it
    OPENED = "opened"  # released once to a designated handler's own folder
    IN_USE = "in_use"  # released again: being worked with
    DELETED = "deleted"  # certified deleted (消去) by a designated handler; our copies erased
    RETURNED = "returned"  # certified returned (返却); our copies erased
    REFUSED = "refused"  # did not verify; kept in quarantine with its reasons, never released


ALLOWED: dict[HoldingState, frozenset[HoldingState]] = {
    HoldingState.ARRIVING: frozenset({HoldingState.RECEIVED, HoldingState.REFUSED}),
    HoldingState.RECEIVED: frozenset(
        {HoldingState.OPENED, HoldingState.DELETED, HoldingState.RETURNED}
    ),
    HoldingState.OPENED: frozenset(
        {HoldingState.IN_USE, HoldingState.DELETED, HoldingState.RETURNED}
    ),
    HoldingState.IN_USE: frozenset({HoldingState.DELETED, HoldingState.RETURNED}),
    HoldingState.REFUSED: frozenset({HoldingState.ARRIVING}),
    HoldingState.DELETED: frozenset(),
    HoldingState.RETURNED: frozenset(),
}
HELD = (HoldingState.RECEIVED, HoldingState.OPENED, HoldingState.IN_USE)
DISPOSED = (HoldingState.DELETED, HoldingState.RETURNED)


class Holding(SQLModel, table=True):
    """One received file and the terms it is held under."""

    __tablename__ = "holdings"
    id: str = Field(primary_key=True)
    state: str = Field(index=True)
    agreement: str | None = Field(default=None, index=True)
    flow: str | None = None
    provider: str | None = None
    recipient: str | None = None
    transfer: str | None = Field(default=None, index=True)  # the provider's transfer id
    delivered_name: str
    file_name: str | None = None
    profile: str | None = None
    size: int | None = Field(default=None, sa_column=Column(BigInteger))
    sha256: str | None = None
    sealed_size: int | None = Field(default=None, sa_column=Column(BigInteger))
    sealed_sha256: str | None = None
    manifest_sha256: str | None = None
    sender: str | None = None
    witnesses: str = "[]"
    handlers: str = "[]"  # designated receiving handlers (受信担当) when it was received
    received_on: str | None = None
    deadline: str | None = None  # the last day it may be kept (policies.retention)
    replies_to: str | None = None  # the transfer id this one answers (疑義照会・回答)
    corrects: str | None = None  # the transfer id this one corrects (訂正)
    superseded_by: str | None = None  # the holding of a correction to this one
    applied_ns: int | None = Field(default=None, sa_column=Column(BigInteger))
    reasons: str = "[]"
    reminded: str = "[]"  # reminder days already recorded
    overdue_ns: int | None = Field(default=None, sa_column=Column(BigInteger))
    openings: int = 0
    erased_ns: int | None = Field(default=None, sa_column=Column(BigInteger))
    inbox: str = "{}"  # the names it arrived under: manifest, sealed, password
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_ns: int = Field(sa_column=Column(BigInteger, nullable=False))

    @property
    def status(self) -> HoldingState:
        return HoldingState(self.state)

    def names(self, column: str) -> list[str]:
        value = json.loads(getattr(self, column))
        return [str(v) for v in value] if isinstance(value, list) else []

    def reason_list(self) -> list[dict[str, Any]]:
        value = json.loads(self.reasons)
        return value if isinstance(value, list) else []


class TransferLink(SQLModel, table=True):
    """An outbound transfer's link to what it answers or corrects, fixed before approval."""

    __tablename__ = "transfer_links"
    transfer: str = Field(primary_key=True)
    relation: str  # "replies_to" or "corrects"
    ref: str  # what was named here: a holding id or one of our transfer ids
    remote: str  # the transfer id both gateways know it by
    ref_flow: str
    operator: str
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class TermsAcceptance(SQLModel, table=True):
    """A designated receiving handler's signature over the recipient's obligations."""

    __tablename__ = "terms_acceptances"
    __table_args__ = (UniqueConstraint("agreement", "handler", "terms_sha256"),)
    id: int | None = Field(default=None, primary_key=True)
    agreement: str = Field(index=True)
    handler: str
    terms_sha256: str
    statement: str
    signature: str
    fingerprint: str
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class Certificate(SQLModel, table=True):
    """A signed certificate of deletion, return or an applied correction (証明)."""

    __tablename__ = "holding_certificates"
    __table_args__ = (UniqueConstraint("holding", "kind"),)
    id: int | None = Field(default=None, primary_key=True)
    holding: str = Field(index=True)
    kind: str  # "deleted", "returned" or "applied"
    handler: str
    method: str
    signed_on: str
    statement: str
    signature: str
    fingerprint: str
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class HoldingCopy(SQLModel, table=True):
    """A plaintext copy the gateway wrote into a handler's folder (removed when certified)."""

    __tablename__ = "holding_copies"
    id: int | None = Field(default=None, primary_key=True)
    holding: str = Field(index=True)
    handler: str
    path: str
    request_sha256: str = Field(unique=True)  # a signed open request is used once
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    removed_ns: int | None = Field(default=None, sa_column=Column(BigInteger))


H = Holding.__table__  # type: ignore[attr-defined]
L = TransferLink.__table__  # type: ignore[attr-defined]
TERMS = TermsAcceptance.__table__  # type: ignore[attr-defined]
CERTS = Certificate.__table__  # type: ignore[attr-defined]
COPIES = HoldingCopy.__table__  # type: ignore[attr-defined]


def ensure_tables(rt: Runtime) -> None:
    """Create the holdings tables (and the key table) in the state database once per store.

    Raises:
        StorageError: the database cannot be written.
    """
    rt.store.ensure_tables("holdings", [H, L, TERMS, CERTS, COPIES, erasure.KEYS])


def new_holding_id() -> str:
    return "h-" + secrets.token_hex(6)


def require_transition(current: HoldingState, target: HoldingState) -> None:
    """Raises: StateError when `target` cannot follow `current`."""
    if target not in ALLOWED[current]:
        raise StateError(
            f"a holding in state {current.value} cannot become {target.value}",
            hint="see `tachiai holdings show ID` for its state",
        )


def get(rt: Runtime, holding_id: str) -> Holding:
    """Raises: NotFound when there is no such holding."""
    ensure_tables(rt)
    with rt.store.engine.connect() as conn:
        row = conn.execute(select(H).where(H.c.id == holding_id)).mappings().first()
    if row is None:
        raise NotFound(
            f"no holding {holding_id!r}", hint="list holdings with `tachiai holdings list`"
        )
    return Holding.model_validate(dict(row))


def find(
    rt: Runtime,
    *,
    states: Iterable[HoldingState] | None = None,
    transfer: str | None = None,
    unerased: bool = False,
) -> list[Holding]:
    """Holdings, oldest first, optionally in some states, of one provider transfer id, or
    (`unerased`) only those whose copies are not yet erased.

    Raises:
        StorageError: the state database cannot be read.
    """
    ensure_tables(rt)
    query = select(H).order_by(H.c.created_ns, H.c.id)
    if states is not None:
        query = query.where(H.c.state.in_([s.value for s in states]))
    if transfer is not None:
        query = query.where(H.c.transfer == transfer)
    if unerased:
        query = query.where(H.c.erased_ns.is_(None))
    with rt.store.engine.connect() as conn:
        return [Holding.model_validate(dict(r)) for r in conn.execute(query).mappings()]


def create(rt: Runtime, holding: Holding, events: Sequence[Draft] = ()) -> None:
    """Insert a new holding (an intake intent) with its events.

    Raises:
        StorageError: the state database cannot be written.
    """
    ensure_tables(rt)
    with rt.store.transaction() as conn:
        conn.execute(H.insert(), [holding.model_dump()])
        rt.store.record(events, conn)


def transition(
    rt: Runtime,
    h: Holding,
    target: HoldingState,
    events: Sequence[Draft],
    conn: Connection | None = None,
    **changes: Any,
) -> Holding:
    """Move a holding on from the state it was read in, with its events, atomically.

    Raises:
        StateError: the move is not allowed, or another process moved it first.
    """
    require_transition(h.status, target)
    return update(rt, h, events, conn, state=target.value, **changes)


def update(
    rt: Runtime, h: Holding, events: Sequence[Draft], conn: Connection | None = None, **changes: Any
) -> Holding:
    """Change fields of a holding still in the state it was read in (compare-and-set).

    Raises:
        StateError: another process moved the holding meanwhile.
    """
    values = {**changes, "updated_ns": max((e.time_ns for e in events), default=clock.now_ns())}
    if conn is None:
        with rt.store.transaction() as own:
            return update(rt, h, events, own, **changes)
    result = conn.execute(
        sql_update(H).where(H.c.id == h.id, H.c.state == h.state).values(**values)
    )
    if result.rowcount != 1:
        raise StateError(
            f"holding {h.id} changed while being processed",
            hint="look again with `tachiai holdings show ID`",
        )
    rt.store.record(events, conn)
    return h.model_copy(update=values)


def event(
    kind: str,
    h: Holding,
    data: Mapping[str, Any] | None = None,
    *,
    actor: str | None = None,
    key: str | None = None,
    time_ns: int | None = None,
) -> Draft:
    """An event about a holding, carrying what the handling report needs (ids and names only).

    Every event names the holding, flow, provider, our party, the provider's transfer id and,
    when there is one, the deadline (the report reads the latest of each).
    """
    base: dict[str, Any] = {
        "holding": h.id,
        "flow": h.flow,
        "provider": h.provider,
        "party": h.recipient,
        "transfer": h.transfer,
    }
    if h.deadline is not None:
        base["deadline"] = h.deadline
    return Draft(
        key=key or f"{h.id}:{kind}",
        kind=kind,
        time_ns=time_ns or clock.now_ns(),
        subject=h.id,
        agreement=h.agreement,
        actor=actor,
        data={**{k: v for k, v in base.items() if v is not None}, **(data or {})},
    )


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def loads(text: str) -> dict[str, str]:
    value = json.loads(text)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def folder_of(rt: Runtime, holding_id: str) -> Path:
    """`<state>/holdings/ID/`: the manifest, the encrypted copy, or a refused delivery's parts."""
    return rt.settings.state_dir / "holdings" / holding_id


@contextlib.contextmanager
def plaintext(rt: Runtime, h: Holding) -> Iterator[BinaryIO]:
    """The held data as a read-only, seekable stream, decrypted chunk by chunk in memory and
    never written to disk.

    Raises:
        StateError: the key was destroyed (the holding was certified deleted or returned).
        StorageError: the encrypted copy fails authentication or cannot be read.
    """
    key = erasure.key_of(rt.store, h.id)
    if key is None:
        raise StateError(
            f"holding {h.id} has no key: its copy was erased",
            hint="see `tachiai holdings show ID` for the certificate",
        )
    path = folder_of(rt, h.id) / "data.enc"
    raw = _ChunkReader(lambda: erasure.read_plain(path, key, h.id), h.size or 0)
    stream = io.BufferedReader(raw, buffer_size=erasure.CHUNK)
    try:
        yield stream
    finally:
        stream.close()


def erase(rt: Runtime, h: Holding) -> Holding:
    """Destroy a disposed holding's key and our copies; record `holding.erased` (idempotent).

    The plaintext copies the gateway wrote into handlers' folders are removed if they are still
    there; a copy a handler moved elsewhere is outside the gateway's reach and is counted.

    Raises:
        StateError: the holding is not certified deleted or returned.
        StorageError: the database or the folder cannot be written.
    """
    if h.status not in DISPOSED:
        raise StateError(f"holding {h.id} is {h.state}; only a certified holding is erased")
    destroyed = erasure.destroy_key(rt.store, h.id)
    folder = folder_of(rt, h.id)
    removed_spool = False
    for part in ("data.enc", ".data.enc.tmp", "sealed", "password"):
        with contextlib.suppress(FileNotFoundError):
            (folder / part).unlink()
            removed_spool = removed_spool or part == "data.enc"
    removed = missing = 0
    now = clock.now_ns()
    with rt.store.engine.connect() as conn:
        copies = conn.execute(
            select(COPIES).where(COPIES.c.holding == h.id, COPIES.c.removed_ns.is_(None))
        ).mappings()
        paths = sorted({str(r["path"]) for r in copies})  # an opening again rewrote the same
    for path in paths:
        if _remove_copy(Path(path)):
            removed += 1
        else:
            missing += 1
    with rt.store.transaction() as conn:
        conn.execute(
            sql_update(COPIES)
            .where(COPIES.c.holding == h.id, COPIES.c.removed_ns.is_(None))
            .values(removed_ns=now)
        )
        after = update(
            rt,
            h,
            [
                event(
                    "holding.erased",
                    h,
                    {
                        "key_destroyed": destroyed.key_existed,
                        "wal_truncated": destroyed.wal_truncated,
                        "spool_copy_removed": removed_spool,
                        "handler_copies_removed": removed,
                        "handler_copies_gone": missing,
                        "kind": h.state,
                    },
                    time_ns=now,
                )
            ],
            conn,
            erased_ns=now,
        )
    rt.flush()
    log.info("holding %s erased: key destroyed, %d handler copies removed", h.id, removed)
    return after


# -- reply threads (疑義照会・回答, 訂正) ------------------------------------------------------


def link_of(rt: Runtime, transfer_id: str) -> TransferLink | None:
    """The link fixed for an outbound transfer, or None. Read-only (never creates a table):
    `approvals.statement` calls it inside a write transaction of another connection.

    Raises:
        StorageError: the state database cannot be read.
    """
    if not _has_links(rt):
        return None
    with rt.store.engine.connect() as conn:
        row = conn.execute(select(L).where(L.c.transfer == transfer_id)).mappings().first()
    return TransferLink.model_validate(dict(row)) if row is not None else None


def links_to(rt: Runtime, refs: Iterable[str]) -> list[TransferLink]:
    """Outbound links that name any of `refs` (a holding id or a transfer id)."""
    if not _has_links(rt):
        return []
    wanted = list(refs)
    with rt.store.engine.connect() as conn:
        rows = conn.execute(
            select(L).where(L.c.ref.in_(wanted) | L.c.remote.in_(wanted)).order_by(L.c.created_ns)
        ).mappings()
        return [TransferLink.model_validate(dict(r)) for r in rows]


def statement_lines(rt: Runtime, transfer_id: str) -> list[str]:
    """The lines a transfer's link adds to the statement its witnesses sign."""
    link = link_of(rt, transfer_id)
    if link is None:
        return []
    return [f"{'replies-to' if link.relation == 'replies_to' else 'corrects'}: {link.remote}"]


def _remove_copy(path: Path) -> bool:
    """Unlink a plaintext copy we wrote if it is still a plain file there; never follow links."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        path.unlink()
        return True
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StorageError(f"cannot remove the opened copy {path}: {exc.strerror}") from exc


class _ChunkReader(io.RawIOBase):
    """A read-only raw stream over authenticated plaintext chunks. Seeking (readers sniff the
    start of a file) decrypts again from the beginning: nothing is buffered on disk."""

    def __init__(self, chunks: Callable[[], Iterator[bytes]], size: int) -> None:
        self._open = chunks
        self._chunks = chunks()
        self._left = b""
        self._pos = 0
        self._size = size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        target += offset
        if target < 0:
            raise ValueError("negative seek position")
        if target < self._pos:
            self._chunks, self._left, self._pos = self._open(), b"", 0
        while self._pos < target and self.read(min(target - self._pos, erasure.CHUNK)):
            pass
        return self._pos

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._left = nxt
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        self._pos += n
        return n


def _has_links(rt: Runtime) -> bool:
    return rt.store.has_table(L.name)
