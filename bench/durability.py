"""Counting what a step makes durable, in this process: SQLite commits that wrote (each one an
fsync of the write-ahead log under synchronous=FULL), by database file, and `os.fsync` calls
(sealed files, the spool, folders).

For benchmarks only: it listens to every SQLAlchemy engine and wraps `os.fsync` while counting.
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event


@dataclass
class Counts:
    """Durable commits by database file name, and fsyncs of files and folders."""

    commits: collections.Counter[str] = field(default_factory=collections.Counter)
    fsyncs: int = 0

    def total_commits(self) -> int:
        return sum(self.commits.values())

    def minus(self, earlier: Counts) -> Counts:
        return Counts(self.commits - earlier.commits, self.fsyncs - earlier.fsyncs)

    def copy(self) -> Counts:
        return Counts(collections.Counter(self.commits), self.fsyncs)


@contextlib.contextmanager
def counting() -> Iterator[Counts]:
    """Count durable commits and fsyncs made in this process inside the block."""
    counts = Counts()
    before: dict[int, int] = {}
    names: dict[int, str] = {}

    def on_begin(conn: Any) -> None:
        raw = conn.connection.dbapi_connection
        if hasattr(raw, "total_changes"):
            before[id(raw)] = raw.total_changes

    def on_commit(conn: Any) -> None:
        raw = conn.connection.dbapi_connection
        if not hasattr(raw, "total_changes") or raw.total_changes == before.get(id(raw)):
            return  # a read, or a write transaction that changed nothing: no WAL frame, no fsync
        if id(raw) not in names:
            rows = raw.execute("PRAGMA database_list").fetchall()
            names[id(raw)] = Path(rows[0][2]).name if rows and rows[0][2] else "memory"
        counts.commits[names[id(raw)]] += 1

    real_fsync = os.fsync

    def fsync(fd: Any) -> None:
        counts.fsyncs += 1
        real_fsync(fd)

    event.listen(Engine, "begin", on_begin)
    event.listen(Engine, "commit", on_commit)
    os.fsync = fsync
    try:
        yield counts
    finally:
        os.fsync = real_fsync
        event.remove(Engine, "commit", on_commit)
        event.remove(Engine, "begin", on_begin)
