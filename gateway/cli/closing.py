"""What a command opened (its runtime, a ledger), closed when the command ends.

The console script ends the process without tearing the interpreter down (gateway.cli.leave),
so nothing would close the database connections: SQLite would keep its -wal file beside a
database no daemon uses, and PostgreSQL would count every command's session as abandoned.
The command line's helpers that open (gateway.cli.common, gateway.cli.audit_trust) say so
here; `main` closes them all after the handler, whatever its outcome. Imports nothing: every
command loads it.
"""

from __future__ import annotations

from collections.abc import Callable

_opened: list[Callable[[], None]] = []


def opened(close: Callable[[], None]) -> None:
    """Close this (a bound `close`) when the command ends."""
    _opened.append(close)


def close_all() -> None:
    """Close what was opened, the last first. A failure to close is no failure of the
    command, whose work is committed by then: it is left to the process's end."""
    while _opened:
        close = _opened.pop()
        try:
            close()
        except Exception:  # noqa: S112 - see above: the exit code is the command's
            continue
