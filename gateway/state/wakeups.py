"""Waking a daemon early when another node changed work (PostgreSQL LISTEN/NOTIFY).

Every state change on PostgreSQL sends NOTIFY on `CHANNEL` with its transaction, delivered only
if it commits (`gateway.state.store`, where its events are queued). `Listener` holds one
connection that LISTENs and sets an event for each notification. It only wakes: polling the
database stays the truth, so a lost notification (a dropped connection, a restart) costs at
most one poll interval. On SQLite there is one daemon per database and nothing to listen to.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import psycopg
from sqlalchemy.exc import SQLAlchemyError

from gateway.state.store import WAKE_CHANNEL, Store

log = logging.getLogger(__name__)

CHANNEL = WAKE_CHANNEL
_RECONNECT_SECONDS = 5.0


class Listener:
    """A thread that sets `wake` (and `noticed`, if given: what the wake was for) whenever
    another process notifies `CHANNEL`."""

    def __init__(self, store: Store, wake: threading.Event,
                 noticed: threading.Event | None = None) -> None:
        self.store = store
        self.wake = wake
        self.noticed = noticed
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start listening; False on SQLite, where there is nothing to listen to."""
        if self.store.engine.dialect.name != "postgresql":
            return False
        self._thread = threading.Thread(target=self._run, name="wakeups", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            except (SQLAlchemyError, psycopg.Error) as exc:
                # Polling still finds the work; only the early wake-up is missing meanwhile.
                log.warning("not listening for work from other nodes (retried): %s",
                            exc.__class__.__name__)
                self._stopping.wait(_RECONNECT_SECONDS)

    def _listen(self) -> None:
        raw = self.store.engine.raw_connection()
        driver = raw.driver_connection
        raw.detach()  # its own connection, closed for real: LISTEN must not go back to a pool
        assert isinstance(driver, psycopg.Connection)
        try:
            driver.autocommit = True
            driver.execute(f"LISTEN {CHANNEL}")
            while not self._stopping.is_set():
                for _ in driver.notifies(timeout=1.0, stop_after=1):
                    if self.noticed is not None:
                        self.noticed.set()
                    self.wake.set()
        finally:
            with contextlib.suppress(psycopg.Error):
                driver.close()
