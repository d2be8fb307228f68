"""The one place database errors become the gateway's own: SQLAlchemy's and the sqlite3
driver's errors turn into StorageError (a locked database says so, with what to do) or, for a
constraint another process won first, StateError.

Every query of `gateway.state` runs inside `converted`; nothing else catches a database error.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from gateway.errors import StateError, StorageError

# sqlite3 says "database is locked" (or "database table is locked") once its busy timeout ran
# out; PostgreSQL's lock_timeout says "canceling statement due to lock timeout".
_LOCKED = ("database is locked", "database table is locked", "lock timeout")


@contextmanager
def converted(doing: str) -> Iterator[None]:
    """Run a database step; its failure becomes our error, naming what was being done.

    Raises:
        StorageError: the database cannot be read or written, or is locked (exit 74).
        StateError: a uniqueness rule refused the row: another process wrote it first (exit 75).
    """
    from sqlalchemy.exc import SQLAlchemyError  # loaded already by whoever runs a query

    try:
        yield
    except SQLAlchemyError as exc:
        raise convert(exc, doing) from exc
    except sqlite3.Error as exc:  # the driver used directly (a WAL checkpoint)
        raise convert(exc, doing) from exc


def convert(exc: BaseException, doing: str) -> StorageError | StateError:
    """Our error for a database error met while `doing` something (e.g. "read holdings")."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause)
    integrity, operational = _kinds(exc)
    if integrity:
        return StateError(
            f"cannot {doing}: the database already holds this record ({_first_line(text)})",
            hint="another command or the daemon did it first; look again, then retry if needed",
        )
    if operational and any(
        mark in text.lower() for mark in _LOCKED
    ):
        return StorageError(
            f"cannot {doing}: the state database is locked by another process that is writing "
            "to it",
            hint="retry in a moment; if it stays locked, find the process holding tachiai.db "
            "in the state directory (`fuser -v STATE_DIR/tachiai.db`), or wait longer with "
            "gateway.busy_timeout_seconds",
        )
    return StorageError(f"cannot {doing}: {exc.__class__.__name__}: {_first_line(text)}")


@contextmanager
def converted_sqlite(doing: str) -> Iterator[None]:
    """`converted` for the sqlite3 driver used directly (gateway.state.lite), without loading
    the database layer to catch its errors.

    Raises:
        as `converted`.
    """
    try:
        yield
    except sqlite3.Error as exc:
        raise convert(exc, doing) from exc


def _kinds(exc: BaseException) -> tuple[bool, bool]:
    """Whether `exc` is an integrity error, and whether an operational one."""
    if isinstance(exc, sqlite3.Error):
        return isinstance(exc, sqlite3.IntegrityError), isinstance(exc, sqlite3.OperationalError)
    from sqlalchemy.exc import IntegrityError, OperationalError

    return isinstance(exc, IntegrityError), isinstance(exc, OperationalError)


def _first_line(text: str) -> str:
    # The driver's message, without SQLAlchemy's statement and parameters appended below it:
    # those may hold ids of people's data, which never belong in a message.
    return text.strip().splitlines()[0] if text.strip() else "no detail"
