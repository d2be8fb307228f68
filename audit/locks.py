"""The one checkpoint signer of a ledger shared by several nodes: a PostgreSQL session lock.

The signer holds `pg_try_advisory_lock` on a connection of its own for as long as it signs;
the server frees the lock when that connection ends, so when the holder dies (or its node is
cut off) another takes over. On SQLite there is one daemon per ledger file, so the lock is
always held. This module never signs, and never reads gateway state.
"""

from __future__ import annotations

import contextlib
import logging

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from audit import schema

log = logging.getLogger(__name__)

_MASK32 = 0xFFFFFFFF


class SignerLock:
    """The right to sign checkpoints of one ledger; at most one holder among all processes."""

    def __init__(self, engine: Engine, key: int = schema.SIGNER_LOCK_KEY) -> None:
        self.engine = engine
        self.key = key
        self.shared = engine.dialect.name == "postgresql"
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        """Take the lock if it is free; True when this process holds it (already or now).

        Never waits: a process that finds it taken simply does not sign this time.
        """
        if not self.shared:
            return True
        if self.held():
            return True
        try:
            # No transaction stays open on it (it would hold back the server's cleanup).
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            # A connection of its own, closed for real when we let go: a session lock must
            # never go back to the pool with the lock still on it.
            conn.detach()
            got = bool(
                conn.exec_driver_sql(
                    "SELECT pg_try_advisory_lock(%s::bigint)", (self.key,)
                ).scalar()
            )
        except SQLAlchemyError as exc:
            log.warning("cannot take the checkpoint signer lock: %s", exc.__class__.__name__)
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        log.info("this process is now the checkpoint signer")
        return True

    def held(self) -> bool:
        """Whether this process holds the lock now, as the server sees it.

        False when the lock's connection was lost (its lock with it), which then is dropped.
        """
        if not self.shared:
            return True
        if self._conn is None:
            return False
        try:
            held = bool(
                self._conn.exec_driver_sql(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = pg_backend_pid() AND granted AND objsubid = 1 "
                    "AND classid = %s::oid AND objid = %s::oid)",
                    (self.key >> 32, self.key & _MASK32),
                ).scalar()
            )
        except SQLAlchemyError:
            held = False
        if not held:
            log.warning("the checkpoint signer lock was lost with its connection")
            self._drop()
        return held

    def release(self) -> None:
        """Let another process sign (closing the connection frees the lock)."""
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.exec_driver_sql("SELECT pg_advisory_unlock(%s::bigint)", (self.key,))
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                conn.close()
