"""The signer's side of checkpoints: sign the ledger's growth, never a contradiction.

A `Checkpointer` keeps its own tree, built by hashing the events' bytes itself, and starts from
the latest checkpoint its key signed, which the ledger must still match. So a rewritten database
is refused, not signed; and it never signs two different roots for one size (no split view).
Given a `SignerLock`, it signs only while it holds it, so among several nodes on one PostgreSQL
ledger exactly one signs at a time.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from audit.checkpoints import Checkpoint, SignedCheckpoint, parse, sign
from audit.errors import LedgerIntegrityError
from audit.locks import SignerLock
from audit.notes import NoteError, NoteSigner
from audit.tiles import Frontier

if TYPE_CHECKING:
    from audit.ledger import Ledger

log = logging.getLogger(__name__)

_READ_CHUNK = 65_536


class Checkpointer:
    """Signs checkpoints of one ledger with one key, each consistent with the last."""

    def __init__(self, ledger: Ledger, signer: NoteSigner, lock: SignerLock | None = None) -> None:
        self.ledger = ledger
        self.signer = signer
        self.lock = lock
        self._known: tuple[tuple[str, str], ...] = ()
        self.frontier = Frontier()
        self.last: SignedCheckpoint | None = None
        origin = ledger.origin
        if origin is None:
            raise LedgerIntegrityError("the ledger has no origin: open it writable once")
        self.origin = origin

    def resume(self, known: Sequence[tuple[str, str]] = ()) -> SignedCheckpoint | None:
        """Start from the latest checkpoint this key signed, found in the ledger or `known`
        (notes from the external places). Returns it, or None when there is none.

        Raises:
            LedgerIntegrityError: when the ledger no longer holds or matches that checkpoint.
        """
        self._known = tuple(known)
        verifier = self.signer.verifier()
        best: SignedCheckpoint | None = None
        for note, source in [*self.ledger.checkpoints(), *known]:
            try:
                signed = parse(note, source, verifier)
            except NoteError:
                continue  # another key's, or damaged: not ours to continue from
            cp = signed.checkpoint
            if cp.origin == self.origin and (
                best is None
                or (cp.size, cp.time_ns) > (best.checkpoint.size, best.checkpoint.time_ns)
            ):
                best = signed
        if best is None:
            self.frontier, self.last = Frontier(), None
            return None
        cp = best.checkpoint
        if self.ledger.size() < cp.size:
            raise LedgerIntegrityError(
                f"the ledger was cut: {best.describe()} covers {cp.size} events, the ledger "
                f"holds {self.ledger.size()}; refusing to sign",
                seq=self.ledger.size(),
            )
        try:
            with self.ledger.reader() as reader:
                frontier = reader.frontier_at(cp.size)
        except LookupError as exc:
            raise LedgerIntegrityError(f"the ledger lacks hashes below {cp.size}: {exc}") from exc
        if frontier.root() != cp.root:
            raise LedgerIntegrityError(
                f"the ledger no longer matches {best.describe()}: it was rewritten; refusing "
                "to sign (run `tachiai audit verify`)"
            )
        self.frontier, self.last = frontier, best
        return best

    def next(self, now_ns: int, size: int | None = None) -> SignedCheckpoint | None:
        """Sign the ledger as it is now (or its first `size` events, which the caller has
        checked), if it grew since the last checkpoint.

        With a lock, None also when another process holds it; on taking it over, this one first
        resumes from the latest checkpoint in the ledger (the last holder's, perhaps).

        Raises:
            LedgerIntegrityError: when the new events' stored hashes or tree head differ from
                what their bytes give, or the ledger shrank.
        """
        if self.lock is not None and not self.lock.held():
            if not self.lock.acquire():
                return None
            self.resume(self._known)
        if size is None:
            size = self.ledger.size()
        if size == self.frontier.size:
            return None
        if size < self.frontier.size:
            raise LedgerIntegrityError(
                f"the ledger was cut: it holds {size} events, {self.frontier.size} were "
                "signed; refusing to sign",
                seq=size,
            )
        frontier = self.frontier.copy()
        with self.ledger.reader() as reader:
            while frontier.size < size:
                stop = min(size, frontier.size + _READ_CHUNK)
                leaves: list[bytes] = []
                for seq, body, stored in reader.leaf_hashes(frontier.size, stop):
                    leaf = hashlib.sha256(b"\x00" + body).digest()
                    if leaf != stored or seq != frontier.size + len(leaves):
                        raise LedgerIntegrityError(
                            f"event {seq} does not match its stored hash; refusing to sign", seq=seq
                        )
                    leaves.append(leaf)
                if len(leaves) != stop - frontier.size:
                    raise LedgerIntegrityError(
                        "events are missing; refusing to sign", seq=frontier.size + len(leaves)
                    )
                frontier.extend(leaves)
            head = reader.head_frontier(size)
        if head is not None and head != b"".join(frontier.hashes):
            raise LedgerIntegrityError(
                f"the tree head at size {size} differs from the events' hashes; refusing to sign",
                seq=self.frontier.size,
            )
        when = max(now_ns, self.last.checkpoint.time_ns if self.last else 0)
        signed = sign(Checkpoint(self.origin, size, frontier.root(), when), self.signer)
        self.frontier, self.last = frontier, signed
        log.debug("signed checkpoint of %d events", size)
        return signed
