"""A consistent copy of the ledger for an auditor, taken while the daemon may be appending.

An SQLite ledger is read through SQLite's online backup; a ledger on PostgreSQL is read in one
snapshot (`audit.copy`). Either way only the new copy is written, an SQLite file an auditor can
take away; the ledger itself never changes. The caller makes sure `dest` does not exist yet.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from audit.copy import copy_to_sqlite
from audit.database import is_postgres_url
from audit.errors import AuditError
from audit.ledger import Ledger
from gateway.errors import NotFound, StorageError
from gateway.i18n import N_


def copy_ledger(location: str, dest: Path, *, password_file: Path | None = None) -> int | None:
    """Copy the ledger at `location` (a file, or a `postgresql://` URL, its password from
    `password_file` or libpq's environment) into a new SQLite file; return how many events were
    copied when the copy counted them (PostgreSQL).

    Raises:
        NotFound: there is no ledger at `location`.
        StorageError: the ledger cannot be read or the copy cannot be written.
    """
    if is_postgres_url(location):
        try:
            ledger = Ledger.connect(
                location, read_only=True, create=False, password_file=password_file
            )
            try:
                return copy_to_sqlite(ledger, dest)
            finally:
                ledger.close()
        except AuditError as exc:
            raise StorageError(N_("cannot copy the ledger to {dest}: {exc}").format(
                                   dest=dest, exc=exc)) from exc
    source = Path(location)
    if not source.is_file():
        raise NotFound(N_("no ledger at {source}").format(source=source))
    try:
        src = sqlite3.connect(f"file:{source.resolve()}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(dest)
            try:
                src.backup(dst)  # a consistent snapshot, even while the daemon appends
                dst.execute("PRAGMA journal_mode = DELETE")
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise StorageError(
            N_("cannot copy the ledger to {dest}: {exc}").format(dest=dest, exc=exc),
            hint=N_("check that the destination's folder exists and is writable, then retry"),
        ) from exc
    return None
