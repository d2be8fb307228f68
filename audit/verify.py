"""Full verification of a ledger: every byte, every hash, every tree head, every checkpoint.

The stored bytes of each event are hashed again (RFC 9162 §2.1.1 leaves) and compared with the
stored leaf hash; the indexed columns are bound to the bytes by rebuilding the event's header
from them; the tree is rebuilt and compared with every stored node, every tree head and the
root of every checkpoint, whose signatures are checked against a key the auditor brings.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from audit.checkpoints import SignedCheckpoint, format_time, parse
from audit.errors import LedgerIntegrityError, LedgerStorageError
from audit.events import HEADER, decode
from audit.notes import NoteError, NoteVerifier
from audit.tiles import Frontier

if TYPE_CHECKING:
    from audit.ledger import Ledger

# The first seven in the order of events.HEADER, so a row's slice fills it.
_COLUMNS = "seq, time_ns, kind, key, subject, agreement, actor, body, leaf_hash"
_CHUNK = 512  # rows per fetch: small enough to stay in the CPU cache
_sha256 = hashlib.sha256


@dataclass(frozen=True)
class VerifyReport:
    """What a full verification found and checked."""

    size: int
    root: bytes
    heads: int
    checkpoints: tuple[SignedCheckpoint, ...]
    deep: bool
    seconds: float

    @property
    def signed(self) -> tuple[SignedCheckpoint, ...]:
        """The checkpoints whose signature was checked against the trusted key."""
        return tuple(c for c in self.checkpoints if c.verified)

    @property
    def latest_signed(self) -> SignedCheckpoint | None:
        signed = self.signed
        return (
            max(signed, key=lambda c: (c.checkpoint.size, c.checkpoint.time_ns)) if signed else None
        )


def verify(
    ledger: Ledger,
    *,
    progress: Callable[[int], None] | None = None,
    checkpoints: Sequence[tuple[str, str]] = (),
    key: NoteVerifier | None = None,
    deep: bool = False,
) -> VerifyReport:
    """Recompute the ledger from its bytes and check it against every checkpoint.

    `checkpoints` are (note, source) pairs from outside; those kept in the ledger are added.
    With `key`, every checkpoint must be signed by it; without, signatures are not checked
    (the report says so) but sizes and roots still are.

    Raises:
        LedgerIntegrityError: naming the first bad event (its seq), tree head or checkpoint.
        LedgerStorageError: when the database cannot be read.
    """
    from sqlalchemy.exc import SQLAlchemyError  # loaded already by the ledger's engine

    try:
        raw = ledger.engine.raw_connection()
    # A raw connection's failure comes unwrapped from the driver (psycopg: server unreachable).
    except (SQLAlchemyError, ledger.engine.dialect.loaded_dbapi.Error) as exc:
        raise LedgerStorageError(
            f"cannot read the ledger: {getattr(exc, 'orig', None) or exc}"
        ) from exc
    try:
        return verify_over(raw, postgres=ledger.engine.dialect.name == "postgresql",
                           progress=progress, checkpoints=checkpoints, key=key, deep=deep)
    finally:
        raw.close()


def verify_over(
    raw: Any,
    *,
    postgres: bool,
    progress: Callable[[int], None] | None = None,
    checkpoints: Sequence[tuple[str, str]] = (),
    key: NoteVerifier | None = None,
    deep: bool = False,
) -> VerifyReport:
    """`verify` over a DB-API connection to the ledger's database (the caller closes it):
    the ledger's engine's, or sqlite3's own (audit.lite).

    Raises:
        as `verify`.
    """
    started = time.perf_counter()
    try:
        cur = raw.cursor()
        # One read transaction, so a writer appending meanwhile cannot split what we read.
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ" if postgres else "BEGIN")
        origin = _one(cur, "SELECT value FROM ledger_meta WHERE name = 'origin'")
        heads = {int(s): bytes(f) for s, f in _all(cur, "SELECT size, frontier FROM ledger_heads")}
        nodes = {
            (int(lv), int(ix)): bytes(h)
            for lv, ix, h in _all(cur, "SELECT level, idx, hash FROM ledger_nodes")
        }
        notes = [
            (str(n), f"the ledger (checkpoint row {i})")
            for i, n in _all(cur, "SELECT id, note FROM ledger_checkpoints ORDER BY id")
        ]
        signed = _checkpoints([*checkpoints, *notes], key, origin)
        walk = _Walk(heads, nodes, signed, deep)
        if postgres:
            cur = raw.cursor(name="tachiai_verify")  # server-side: rows stream, not all at once
        cur.execute(f"SELECT {_COLUMNS} FROM ledger_events ORDER BY seq")  # noqa: S608
        for rows in _chunks(cur):
            walk.chunk(rows)
            if progress is not None:  # once a chunk: a person at a terminal sees it move
                progress(walk.frontier.size)
        walk.finish()
    except Exception as exc:  # the DB-API's own errors: no SQLAlchemy wrapper on this path
        if isinstance(exc, LedgerIntegrityError | LedgerStorageError):
            raise
        if type(exc).__module__.split(".")[0] in ("sqlite3", "psycopg", "psycopg2"):
            raise LedgerStorageError(f"cannot read the ledger: {exc}") from exc
        raise
    finally:
        raw.rollback()
    return VerifyReport(
        size=walk.frontier.size,
        root=walk.frontier.root(),
        heads=len(heads),
        checkpoints=tuple(walk.matched),
        deep=deep,
        seconds=time.perf_counter() - started,
    )


class _Walk:
    """The state of one pass over the events: the rebuilt tree and what is left to meet."""

    def __init__(
        self,
        heads: dict[int, bytes],
        nodes: dict[tuple[int, int], bytes],
        checkpoints: dict[int, list[SignedCheckpoint]],
        deep: bool,
    ) -> None:
        self.heads = heads
        self.nodes = nodes
        self.checkpoints = checkpoints
        self.deep = deep
        self.frontier = Frontier()
        self.stops = sorted(set(heads) | set(checkpoints))
        self.next_stop = 0
        self.matched: list[SignedCheckpoint] = []
        self.good_size = 0  # the largest checkpoint size whose root matched so far

    def chunk(self, rows: list[Any]) -> None:
        start = self.frontier.size
        bodies = [r[7] for r in rows]
        stored = [r[8] for r in rows]
        if type(bodies[0]) is not bytes:  # PostgreSQL's drivers may hand out memoryviews
            bodies, stored = list(map(bytes, bodies)), list(map(bytes, stored))
        leaves = [_sha256(b"\x00" + b).digest() for b in bodies]
        try:
            headers = [(HEADER % r[:7]).encode() for r in rows]
        except (TypeError, UnicodeEncodeError):  # a column of the wrong type: find which row
            headers = [_header_of(r) for r in rows]
        if (
            rows[0][0] != start
            or rows[-1][0] != start + len(rows) - 1
            or leaves != stored
            or not all(map(bytes.startswith, bodies, headers))
        ):
            seqs = [r[0] for r in rows]
            self._name_bad_row(start, seqs, bodies, stored, leaves, headers)
        if self.deep:
            for seq, body in zip((r[0] for r in rows), bodies, strict=True):
                try:
                    decode(body)
                except ValueError as exc:
                    raise LedgerIntegrityError(
                        f"event {seq} is not in canonical form: {exc}", seq=seq
                    ) from exc
        i = 0
        while i < len(leaves):
            stop = self._stop()
            take = (
                len(leaves) - i if stop is None else min(len(leaves) - i, stop - self.frontier.size)
            )
            self._extend(leaves[i : i + take])
            i += take
            if stop is not None and self.frontier.size == stop:
                self._meet(stop)

    def finish(self) -> None:
        n = self.frontier.size
        stray = [(ix << lv, lv) for lv, ix in self.nodes if (ix + 1) << lv <= n]
        if stray:
            first, level = min(stray)
            raise LedgerIntegrityError(
                f"the ledger stores a tree node (level {level}, from event {first}) that its "
                "events do not make",
                seq=first,
            )
        claims = [(s, "a tree head in the ledger") for s in self.heads if s > n]
        claims += [((ix + 1) << lv, "a stored tree node") for lv, ix in self.nodes]
        claims += [(s, c[0].describe()) for s, c in self.checkpoints.items() if s > n]
        if claims:
            size, what = max(claims)
            raise LedgerIntegrityError(
                f"the ledger was cut: {what} records {size} events but only {n} remain "
                f"(events {n}..{size - 1} are missing). If this copy of the ledger was made "
                "before that checkpoint, copy the checkpoints first and then the ledger",
                seq=n,
            )

    def _stop(self) -> int | None:
        return self.stops[self.next_stop] if self.next_stop < len(self.stops) else None

    def _extend(self, leaves: list[bytes]) -> None:
        for level, index, h in self.frontier.extend(leaves):
            if self.nodes.pop((level, index), None) != h:
                first = index << level
                raise LedgerIntegrityError(
                    f"the stored tree node over events {first}..{first + (1 << level) - 1} "
                    "is missing or wrong",
                    seq=first,
                )

    def _meet(self, size: int) -> None:
        self.next_stop += 1
        head = self.heads.get(size)
        if head is not None and head != b"".join(self.frontier.hashes):
            raise LedgerIntegrityError(
                f"the tree head recorded at size {size} does not match the events before it "
                f"(an event in {self.good_size}..{size - 1} was rewritten, or the head forged)",
                seq=self.good_size,
            )
        found = self.checkpoints.get(size, [])
        if not found:
            return
        root = self.frontier.root()
        for signed in found:
            if signed.checkpoint.root != root:
                how = "" if signed.verified else " (its signature was not checked)"
                raise LedgerIntegrityError(
                    f"{signed.describe()}{how} does not match the events: an event in "
                    f"{self.good_size}..{size - 1} was changed after it was signed and the "
                    "hashes rewritten to hide it",
                    seq=self.good_size,
                )
            self.matched.append(signed)
        self.good_size = size

    def _name_bad_row(
        self,
        start: int,
        seqs: list[int],
        bodies: list[bytes],
        stored: list[bytes],
        leaves: list[bytes],
        headers: list[bytes],
    ) -> None:
        for i, seq in enumerate(seqs):
            expected = start + i
            if seq != expected:
                raise LedgerIntegrityError(
                    f"event {expected} is missing: the sequence jumps from {expected - 1} to {seq}",
                    seq=expected,
                )
            if leaves[i] != stored[i]:
                raise LedgerIntegrityError(
                    f"event {seq} was changed: its bytes no longer match its hash", seq=seq
                )
            if not bodies[i].startswith(headers[i]):
                raise LedgerIntegrityError(_header_problem(seq, bodies[i]), seq=seq)


def _header_of(row: Any) -> bytes:
    try:
        return (HEADER % tuple(row[:7])).encode("utf-8")
    except (TypeError, UnicodeEncodeError):
        return b"\x00"  # matches no event: the row is reported as not matching its bytes


def _header_problem(seq: int, body: bytes) -> str:
    try:
        said = json.loads(body).get("seq")
    except (ValueError, AttributeError):
        return f"event {seq} is malformed: its bytes are not an event"
    if said != seq:
        return (
            f"event {seq} is out of place: its bytes say seq {said} (events were "
            "reordered, or one before it removed or replaced)"
        )
    return f"event {seq}: its indexed columns differ from its hashed bytes"


def _checkpoints(
    notes: Sequence[tuple[str, str]], key: NoteVerifier | None, origin: object
) -> dict[int, list[SignedCheckpoint]]:
    by_size: dict[int, list[SignedCheckpoint]] = {}
    seen: set[str] = set()
    for note, source in notes:
        if note in seen:
            continue
        seen.add(note)
        try:
            signed = parse(note, source, key)
        except NoteError as exc:
            who = f"the trusted key {key.name}" if key else "any key"
            raise LedgerIntegrityError(
                f"a checkpoint in {source} is not signed by {who} or is malformed: {exc}"
            ) from exc
        cp = signed.checkpoint
        if origin is not None and cp.origin != origin:
            raise LedgerIntegrityError(
                f"{signed.describe()} is for another log ({cp.origin}); this ledger is {origin}"
            )
        for other in by_size.get(cp.size, []):
            if other.checkpoint.root != cp.root:
                raise LedgerIntegrityError(
                    f"two checkpoints for size {cp.size} disagree ({format_time(cp.time_ns)} "
                    f"from {source}, and {other.describe()}): the log was forked"
                )
        by_size.setdefault(cp.size, []).append(signed)
    return by_size


def _chunks(cur: Any) -> Iterator[list[Any]]:
    while rows := cur.fetchmany(_CHUNK):
        yield rows


def _one(cur: Any, sql: str) -> object:
    cur.execute(sql)
    row = cur.fetchone()
    return None if row is None else row[0]


def _all(cur: Any, sql: str) -> list[Any]:
    cur.execute(sql)
    return list(cur.fetchall())
