"""What a command opened (its runtime, a ledger, a store), closed when the command ends.

The console script ends the process without tearing the interpreter down (gateway.cli.leave),
so nothing would close the database connections: SQLite would keep its -wal file beside a
database no daemon uses, and PostgreSQL would count every command's session as abandoned.
What the command line opens goes through `opened`; `main` closes it all after the handler,
whatever its outcome. Imports nothing of the gateway: every command loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar


class Closable(Protocol):
    """What a command opens: a runtime, a store, a ledger."""

    def close(self) -> None: ...


_C = TypeVar("_C", bound=Closable)
_opened: list[Callable[[], None]] = []


def opened(thing: _C) -> _C:
    """`thing`, to be closed when the command ends."""
    _opened.append(thing.close)
    return thing


def close_all() -> None:
    """Close what was opened, the last first. A failure to close is no failure of the
    command, whose work is committed by then: it is left to the process's end."""
    while _opened:
        close = _opened.pop()
        try:
            close()
        except Exception:  # noqa: S112 - see above: the exit code is the command's
            continue
