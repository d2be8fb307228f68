"""A consistent copy of the ledger for an auditor, taken while the daemon may be appending.

It reads the ledger read-only through SQLite's online backup and writes only the new copy;
it never changes the ledger. The caller makes sure `dest` does not exist yet.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.errors import NotFound, StorageError


def copy_ledger(source: Path, dest: Path) -> None:
    """Copy the ledger at `source` into a new database file at `dest`.

    Raises:
        NotFound: there is no ledger at `source`.
        StorageError: the ledger cannot be read or the copy cannot be written.
    """
    if not source.is_file():
        raise NotFound(f"no ledger at {source}")
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
            f"cannot copy the ledger to {dest}: {exc}",
            hint="check that the destination's folder exists and is writable, then retry",
        ) from exc
