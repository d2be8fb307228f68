"""Moves events from the state database's outbox into the ledger (監査ログ).

Called after every state change by whichever process made it (the daemon or a command), and
at daemon start-up to finish what a crash interrupted. Appends are idempotent by event key, so
two processes flushing at once never write an event twice. Every event it moves is noted in
the state database (gateway.state.moved), so the ledger guard can tell its events from any
written into the ledger behind its back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from audit.errors import AuditError
from audit.events import encode
from audit.merkle import leaf_hash
from gateway import faults
from gateway.errors import StorageError
from gateway.i18n import N_
from gateway.state import moved

if TYPE_CHECKING:
    from audit.ledger import Ledger
    from gateway.state.store import Store

log = logging.getLogger(__name__)


def flush(store: Store, ledger: Ledger, *, rounds: int | None = None) -> int:
    """Append every pending event to the ledger (with `rounds`, those found in that many
    reads of the pending events: events queued meanwhile wait for the next flush); return how
    many were flushed.

    Raises:
        StorageError: when the ledger refuses the write (the events stay pending).
    """
    moved.begin(store, ledger.size)
    total = 0
    while rounds is None or rounds > 0:
        drafts = store.pending()
        if not drafts:
            return total
        rounds = None if rounds is None else rounds - 1
        try:
            seqs = ledger.append(drafts)
        except AuditError as exc:
            raise StorageError(N_("cannot append to the ledger: {exc}").format(exc=exc)) from exc
        faults.crash_point("after-ledger-append")
        # The leaf hash is computed from our own draft, never read back from the ledger: an
        # event planted under the same key with other bytes then fails the guard's comparison.
        rows = [(d.key, seq, leaf_hash(encode(seq, d))) for d, seq in zip(drafts, seqs,
                                                                         strict=True)]
        # Why this order cannot raise a false alarm after a crash (kill -9 anywhere):
        # 1. the event is pending in the state database before it is appended;
        # 2. the append is durable before this point;
        # 3. its record is written and its pending row removed in ONE state transaction.
        # So every event in the ledger has, at every moment, a pending row (crash between 2
        # and 3: the guard rebuilds the event from it, and the next flush re-appends it
        # idempotently and records it) or a record row, until a signed checkpoint covers it.
        with store.transaction() as conn:
            moved.record(conn, rows)
            store.forget_pending([d.key for d in drafts], conn)
        total += len(drafts)
        log.debug("flushed %d events to the ledger", len(drafts))
    return total
