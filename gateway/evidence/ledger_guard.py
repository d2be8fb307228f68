"""The ledger refuses what the gateway did not write: checked at start and before each signing.

Every event after the last signed checkpoint must be one the recorder moved: its key and leaf
hash in the state database's record (gateway.state.moved), or still pending there with exactly
these bytes (a crash between the append and the record). Anything else was written into the
ledger behind the gateway's back and stops the start (LedgerIntegrityError); it is never signed.
Reads only; never repairs the ledger or the record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from audit.errors import LedgerIntegrityError
from audit.events import encode, parse
from audit.ledger import Ledger
from audit.merkle import leaf_hash
from gateway.state import moved
from gateway.state.store import Store

log = logging.getLogger(__name__)

_CHUNK = 5_000


class LedgerGuard:
    """Compares the ledger's unsigned tail with what the recorder moved."""

    def __init__(self, store: Store, ledger: Ledger) -> None:
        self.store = store
        self.ledger = ledger
        self._adopted_up_to = 0  # legacy events already reported (logged once)

    def check(self, start: int, stop: int, signed_size: Callable[[], int] = lambda: 0) -> None:
        """Every event in [start, stop) must be explained by the record.

        `signed_size` gives the size the latest checkpoint signed by our key covers, asked only
        when an event is unexplained: another process may have signed (and pruned) meanwhile.

        Raises:
            LedgerIntegrityError: naming the first event the gateway did not write.
            StorageError: the state database cannot be read.
        """
        since = moved.begin(self.store, self.ledger.size)
        legacy = 0
        for first in range(start, stop, _CHUNK):
            with self.ledger.reader() as reader:
                rows = list(reader.leaf_hashes(first, min(stop, first + _CHUNK)))
            keys = []
            for seq, body, _stored in rows:
                try:
                    keys.append(parse(body).key)
                except ValueError as exc:
                    raise LedgerIntegrityError(f"event {seq} is malformed: {exc}",
                                               seq=seq) from exc
            # Pending first, then the record: a flush that moves an event between the two
            # reads is then seen in the second (one transaction moves it from one to the other).
            pending = {d.key: d for d in self.store.pending()}
            record = moved.lookup(self.store, keys)
            for (seq, body, stored), key in zip(rows, keys, strict=True):
                leaf = leaf_hash(body)
                if stored == leaf and record.get(key) == (seq, leaf):
                    continue
                draft = pending.get(key)
                if draft is not None and stored == leaf and encode(seq, draft) == body:
                    continue
                if seq < since:
                    legacy += 1  # written before this gateway kept a record (docs/ledger.md §4)
                    continue
                if seq < signed_size():
                    continue
                raise LedgerIntegrityError(
                    f"event {seq} (key {key!r}) is in the ledger, but the gateway never wrote "
                    "it: it was added behind the gateway's back, and is not signed. Run "
                    "`tachiai audit verify`, find out who wrote the ledger file, and restore it "
                    "from a copy that the signed checkpoints vouch for",
                    seq=seq,
                )
        if legacy and stop > self._adopted_up_to:
            log.warning(
                "%d ledger event(s) after the last signed checkpoint predate the record of "
                "moved events (written by an earlier version); they are signed as found", legacy)
        self._adopted_up_to = max(self._adopted_up_to, stop)

    def covered(self, size: int) -> None:
        """A checkpoint of `size` events is signed and kept: forget what it covers.

        Raises:
            StorageError: the state database cannot be written.
        """
        moved.prune(self.store, size)
