"""Holdings (保有データ) until certified deleted or returned (消去・返却).

arriving ─▶ received ─▶ opened ─▶ in_use ─▶ deleted | returned; arriving ─▶ refused ─▶ arriving
(the table is `gateway.state.lifecycles.HOLDINGS`). Each state change and its ledger event are
one transaction, compare-and-set on the state read (`gateway.state.holdings_store`). It holds
names, ids and hashes, never personal data, and runs no SQL of its own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from audit.events import Draft
from gateway.errors import StateError, StorageError
from gateway.i18n import N_
from gateway.inbound import erasure
from gateway.runtime import Runtime
from gateway.state import clock, holdings_store
from gateway.state.lifecycles import DISPOSED, HELD, HOLDINGS, HoldingState
from gateway.state.schema import Holding
from gateway.state.store import Tx

__all__ = [
    "ALLOWED",
    "DISPOSED",
    "HELD",
    "Holding",
    "HoldingState",
    "create",
    "dumps",
    "erase",
    "event",
    "find",
    "folder_of",
    "get",
    "loads",
    "new_holding_id",
    "plaintext",
    "require_transition",
    "transition",
    "update",
]

log = logging.getLogger(__name__)

ALLOWED = HOLDINGS.allowed


def new_holding_id() -> str:
    return "h-" + secrets.token_hex(6)


def require_transition(current: HoldingState, target: HoldingState) -> None:
    """Raises: StateError when `target` cannot follow `current`."""
    HOLDINGS.require_transition(current, target)


def get(rt: Runtime, holding_id: str) -> Holding:
    """Raises: NotFound when there is no such holding."""
    return holdings_store.get(rt.store, holding_id)


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
    return holdings_store.find(rt.store, states=states, transfer=transfer, unerased=unerased)


def latest(
    rt: Runtime,
    *,
    states: Iterable[HoldingState] | None = None,
    since_ns: int | None = None,
    limit: int | None = None,
) -> tuple[list[Holding], int]:
    """A page of holdings: the latest `limit` (all when None), oldest first, and how many
    earlier ones also match.

    Raises:
        StorageError: the state database cannot be read.
    """
    return holdings_store.latest(rt.store, states=states, since_ns=since_ns, limit=limit)


def create(rt: Runtime, holding: Holding, events: Sequence[Draft] = ()) -> None:
    """Insert a new holding (an intake intent) with its events.

    Raises:
        StorageError: the state database cannot be written.
    """
    holdings_store.create(rt.store, holding, events)


@contextlib.contextmanager
def claimed(rt: Runtime, h: Holding, owner: str) -> Iterator[Holding | None]:
    """Claim the holding, in the state it was read in, for `owner` before a step with side
    effects (moving parts in, checking, erasing); yield it as claimed, or None when another
    worker or node holds it (or moved it meanwhile). The claim is given back after the step.

    Raises:
        StorageError: the state database cannot be written.
    """
    if not rt.store.claim("holding", h.id, h.state, owner, rt.settings.lease_seconds):
        yield None
        return
    try:
        yield h.model_copy(update={"claimed_by": owner})
    finally:
        rt.store.release("holding", h.id, owner)


def transition(
    rt: Runtime,
    h: Holding,
    target: HoldingState,
    events: Sequence[Draft],
    conn: Tx | None = None,
    **changes: Any,
) -> Holding:
    """Move a holding on from the state it was read in, with its events, atomically.

    Raises:
        StateError: the move is not allowed, or another process moved it first.
    """
    require_transition(h.status, target)
    return update(rt, h, events, conn, state=target.value, **changes)


def update(
    rt: Runtime, h: Holding, events: Sequence[Draft], conn: Tx | None = None, **changes: Any
) -> Holding:
    """Change fields of a holding still in the state it was read in (compare-and-set).

    Raises:
        StateError: another process moved the holding meanwhile.
    """
    values = {**changes, "updated_ns": max((e.time_ns for e in events), default=clock.now_ns())}
    return holdings_store.update(rt.store, h, values, events, conn)


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


def is_overdue(h: Holding, today: dt.date) -> bool:
    """Held past its deadline (消去・返却の期限): flagged by the daemon's sweep (its clock
    decides), or past the deadline by `today`."""
    return bool(
        h.status in HELD
        and (h.overdue_ns is not None or (h.deadline and h.deadline < today.isoformat()))
    )


def correction_pending(h: Holding) -> bool:
    """A correction (訂正) received and still held, not yet certified as applied."""
    return bool(h.corrects and h.applied_ns is None and h.status in HELD)


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
            N_("holding {id} has no key: its copy was erased").format(id=h.id),
            hint=N_("see `tachiai holdings show ID` for the certificate"),
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
        raise StateError(N_("holding {id} is {state}; only a certified holding is erased").format(
                             id=h.id, state=h.state))
    destroyed = erasure.destroy_key(rt.store, h.id)
    folder = folder_of(rt, h.id)
    removed_spool = False
    for part in ("data.enc", ".data.enc.tmp", "sealed", "password"):
        with contextlib.suppress(FileNotFoundError):
            (folder / part).unlink()
            removed_spool = removed_spool or part == "data.enc"
    removed = missing = 0
    now = clock.now_ns()
    for path in holdings_store.copies_left(rt.store, h.id):
        if _remove_copy(Path(path)):
            removed += 1
        else:
            missing += 1
    with rt.store.transaction() as conn:
        holdings_store.mark_copies_removed(conn, h.id, now)
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
        raise StorageError(N_("cannot remove the opened copy {path}: {strerror}").format(
                               path=path, strerror=exc.strerror)) from exc


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

