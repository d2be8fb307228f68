"""Where this gateway's ledger (監査ログ) lives: `ledger.db` under the state folder, or the
[database] url's PostgreSQL database beside the state tables (their names never meet).

Opening it needs neither the state database nor the agreements, so `audit verify` and `audit
prove` start with the ledger alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from audit.lite import LiteLedger
from gateway.config.settings import Settings

if TYPE_CHECKING:
    from audit.ledger import Ledger


def open_ledger(settings: Settings, *, read_only: bool = False, lite: bool = False) -> Ledger:
    """The ledger: ledger.db under state_dir, or in the [database] url's database beside the
    state (their table names differ).

    `lite` (SQLite only, for a short command: `approve` appends, `audit verify|prove` read):
    through `audit.lite` when the ledger exists already, typed as the Ledger for the methods
    that command uses (append, size, events, reader, checkpoints, verify).

    Raises:
        LedgerStorageError: it cannot be opened (read-only: there is none yet).
    """
    if lite and not settings.database_url:
        found = LiteLedger.open(settings.ledger_path, read_only=read_only)
        if found is not None:
            return cast("Ledger", found)
    from audit.ledger import Ledger

    if settings.database_url:
        return Ledger.connect(
            settings.database_url,
            read_only=read_only,
            create=not read_only,
            password_file=settings.database_password_file,
        )
    return Ledger.open(settings.ledger_path, read_only=read_only)
