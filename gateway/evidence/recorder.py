"""Moves events from the state database's outbox into the ledger (監査ログ).

Called after every state change by whichever process made it (the daemon or a command), and
at daemon start-up to finish what a crash interrupted. Appends are idempotent by event key, so
two processes flushing at once never write an event twice.
"""

from __future__ import annotations

import logging

from audit.errors import AuditError
from audit.ledger import Ledger
from gateway.errors import StorageError
from gateway.state.store import Store

log = logging.getLogger(__name__)


def flush(store: Store, ledger: Ledger) -> int:
    """Append every pending event to the ledger; return how many were flushed.

    Raises:
        StorageError: when the ledger refuses the write (the events stay pending).
    """
    total = 0
    while True:
        drafts = store.pending()
        if not drafts:
            return total
        try:
            ledger.append(drafts)
        except AuditError as exc:
            raise StorageError(f"cannot append to the ledger: {exc}") from exc
        store.forget_pending([d.key for d in drafts])
        total += len(drafts)
        log.debug("flushed %d events to the ledger", len(drafts))
