"""Signed ledger checkpoints (監査ログのチェックポイント) in a remote SFTP folder.

`SftpSink` keeps the layout of a checkpoint folder (`checkpoint`, `history/DAY.checkpoints`,
`ledger.pub`) on an SFTP account whose host key is pinned. It writes from a thread of its own,
so a slow or dead server never holds up signing: `publish` only queues. It never raises into
the checkpoint service, never logs a key, and never accepts an unknown or changed host key.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import posixpath
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from audit.checkpoints import (
    HISTORY_DIR,
    LATEST_FILE,
    PUBLIC_KEY_FILE,
    SignedCheckpoint,
    history_name,
)
from audit.notes import NoteVerifier
from gateway.config.routes import SftpEndpoint
from gateway.errors import PartnerRefused, PartnerUnavailable
from gateway.i18n import N_

if TYPE_CHECKING:
    from gateway.transports.sftp import Session

log = logging.getLogger(__name__)

#: History lines kept for a place while it is unreachable (about 3 hours of checkpoints at one
#: a second); older ones are dropped from that place's history (a gap, logged once).
BACKLOG = 10_000
#: Retries after a failure wait 1, 2, 4 … seconds, at most this long.
RETRY_MAX_SECONDS = 10.0
#: A round (connect, write the queue) is cut off after this many of the endpoint's timeouts:
#: every request has its own timeout, but paramiko waits without one in a few places (opening
#: the SFTP subsystem, its version exchange), where a stalled server could hold it for ever.
ROUND_TIMEOUTS = 10
_CHUNK = 32 * 1024  # paramiko's largest SFTP write request: whole notes, one request each
_PUB_MAX = 4096


class SftpSink:
    """A checkpoint folder on an SFTP server, written like `DirectorySink` writes a local one.

    Each round (on the first connection: make `history/`, check `ledger.pub` and replace it
    when missing or different) appends every queued checkpoint to `history/DAY.checkpoints`,
    then replaces `checkpoint` with the latest (a temporary name, then posix-rename). The
    connection stays open between rounds; after a failure it is dropped and made again.

    While the server is unreachable, checkpoints queue (up to `backlog`) and are appended
    when it is back, so its history has no gap unless the outage outlasts the backlog or the
    daemon stops during it. A history line may appear twice when a reply was lost after the
    server wrote it; a repeated note is harmless to `audit verify`.
    """

    def __init__(
        self,
        endpoint: SftpEndpoint,
        *,
        backlog: int = BACKLOG,
        retry_max_seconds: float = RETRY_MAX_SECONDS,
        round_seconds: float | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.name = endpoint.url()
        self._backlog = backlog
        self._retry_max = retry_max_seconds
        self._round_limit = round_seconds or ROUND_TIMEOUTS * endpoint.timeout_seconds
        self._cond = threading.Condition()
        self._history: collections.deque[SignedCheckpoint] = collections.deque()
        self._latest: SignedCheckpoint | None = None
        self._verifier: NoteVerifier | None = None
        self._closing = False
        self._thread: threading.Thread | None = None
        # Used by the writer thread only:
        self._connection = contextlib.ExitStack()
        self._session: Session | None = None
        self._live: Session | None = None  # being connected or in use: what the watchdog cuts
        self._stalled = False
        self._prepared = False  # history/ made and ledger.pub checked on this connection
        self._failures = 0
        self._failing_since = 0.0
        self._dropped = 0

    def publish(self, signed: SignedCheckpoint, verifier: NoteVerifier) -> None:
        """Queue a checkpoint for the server and return at once; never waits on the network.

        Raises:
            nothing: failures are the writer thread's to log and retry.
        """
        with self._cond:
            self._history.append(signed)
            if len(self._history) > self._backlog:
                self._history.popleft()
                self._dropped += 1
                if self._dropped == 1:
                    log.warning(
                        "%s has been unreachable for more than %d checkpoints: its history "
                        "will miss the oldest of them (the ledger and the other places keep "
                        "them)",
                        self.name,
                        self._backlog,
                    )
            self._latest = signed
            self._verifier = verifier
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="checkpoints-sftp", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until every queued checkpoint is on the server; False when `timeout` passed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float) -> bool:
        """Try once more to write what is queued (for at most `timeout` seconds), then hang up.

        Returns whether everything queued reached the server; a shortfall is logged (a gap in
        that place's history: the ledger and the other places keep those checkpoints).
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            if not self._pending():
                return True
            log.error(
                "%d ledger checkpoint(s) were not written to %s before stopping; the ledger "
                "and the other places keep them",
                len(self._history),
                self.name,
            )
            return False

    # -- the writer thread ------------------------------------------------------------------

    def _pending(self) -> bool:
        return bool(self._history) or self._latest is not None

    def _run(self) -> None:
        try:
            while self._round():
                pass
        finally:
            self._disconnect()

    def _round(self) -> bool:
        """One attempt to write what is queued; False when the thread should end."""
        with self._cond:
            while not self._pending() and not self._closing:
                self._cond.wait()
            if not self._pending():
                return False
        self._stalled = False
        watchdog = threading.Timer(self._round_limit, self._hang_up)
        watchdog.daemon = True
        watchdog.start()
        try:
            ok = self._attempt()
        finally:
            watchdog.cancel()
        with self._cond:
            self._cond.notify_all()  # wake `flush`
            if ok:
                return True
            if self._closing:
                return False  # one last try at shutdown, no more
            self._cond.wait(min(self._retry_max, 2.0 ** (self._failures - 1)))  # or close()
        return True

    def _attempt(self) -> bool:
        reused = self._session is not None
        try:
            try:
                sent = self._send()
            except PartnerUnavailable:
                if not reused:
                    raise
                # A connection kept open may have been cut while idle: once more on a new one.
                self._disconnect()
                sent = self._send()
        except (PartnerUnavailable, PartnerRefused) as exc:
            # Both are retried here: a refused folder or key is fixed at the partner, and the
            # signing never waits for that.
            self._attempt_failed(str(exc))
            return False
        except Exception as exc:  # a bug here must not end the thread (or the signing) either
            if self._failures == 0:
                log.exception("unexpected error writing ledger checkpoints to %s", self.name)
            self._attempt_failed(f"unexpected {exc.__class__.__name__}")
            return False
        if self._failures:
            with self._cond:
                dropped, self._dropped = self._dropped, 0
            log.warning(
                "ledger checkpoints reach %s again after %d failed attempt(s) in %.0f s; %d "
                "queued checkpoint(s) appended to its history, %d older one(s) left out",
                self.name,
                self._failures,
                time.monotonic() - self._failing_since,
                sent,
                dropped,
            )
            self._failures = 0
        return True

    def _attempt_failed(self, reason: str) -> None:
        self._disconnect()
        if self._stalled:
            reason = f"no round finished within {self._round_limit:g} s ({reason})"
        self._failed(reason)

    def _hang_up(self) -> None:
        """The watchdog (its own thread): the round took too long, so cut the connection;
        whatever waits on it fails at once and the round is retried like any failure."""
        self._stalled = True
        live = self._live
        if live is not None:
            live.__exit__(None, None, None)  # never raises; closes the socket under paramiko

    def _failed(self, reason: str) -> None:
        self._failures += 1
        if self._failures == 1:
            self._failing_since = time.monotonic()
            log.error(
                "cannot write ledger checkpoints to %s: %s; retried in the background while "
                "signing goes on (logged once until it works again)",
                self.name,
                reason,
            )
        else:
            log.debug("ledger checkpoints to %s: still failing: %s", self.name, reason)

    def _send(self) -> int:
        """Write the queue; returns how many history lines were appended.

        Raises:
            PartnerUnavailable, PartnerRefused (DeliveryRefused, HostKeyRefused): from the
                session.
        """
        with self._cond:
            batch = list(self._history)
            latest, verifier = self._latest, self._verifier
        session = self._connected()
        if not self._prepared and verifier is not None:
            self._prepare(session, verifier)
        self._append_history(session, batch)
        if latest is not None:
            self._replace(session, LATEST_FILE, latest.note.encode("utf-8"))
            with self._cond:
                if self._latest is latest:
                    self._latest = None
        return len(batch)

    def _connected(self) -> Session:
        if self._session is None:
            from gateway.transports.sftp import Session  # paramiko only where it is used

            # Session refuses a host key that is not pinned (HostKeyRefused) and sets the
            # endpoint's timeout on connect, handshake, authentication and every request.
            self._live = Session(self.endpoint)
            self._session = self._connection.enter_context(self._live)
            self._prepared = False
        return self._session

    def _disconnect(self) -> None:
        self._session = self._live = None
        self._connection.close()  # never raises: Session.__exit__ swallows a broken close

    def _prepare(self, session: Session, verifier: NoteVerifier) -> None:
        ep = self.endpoint
        history = posixpath.join(ep.remote_dir, HISTORY_DIR)
        with session.converted("make the history folder", history):
            try:
                session.sftp.stat(history)
            except FileNotFoundError:
                session.sftp.mkdir(history, 0o755)
        pub = posixpath.join(ep.remote_dir, PUBLIC_KEY_FILE)
        with session.converted("read the public key", pub):
            try:
                with session.sftp.open(pub, "rb") as fh:
                    current = fh.read(_PUB_MAX).decode("utf-8", "replace").strip()
            except FileNotFoundError:
                current = ""
        if current != verifier.to_text():
            self._replace(session, PUBLIC_KEY_FILE, (verifier.to_text() + "\n").encode("utf-8"))
        self._prepared = True

    def _append_history(self, session: Session, batch: list[SignedCheckpoint]) -> None:
        """Append to each day's history file, one SFTP write per chunk of whole notes, and
        drop each chunk from the queue as soon as the server confirms it."""
        for day, chunk in _chunks(batch):
            path = posixpath.join(self.endpoint.remote_dir, HISTORY_DIR, day)
            with (
                session.converted("append to the history", path),
                session.sftp.open(path, "ab") as fh,
            ):
                fh.write(b"".join((s.note + "\n").encode("utf-8") for s in chunk))
                with self._cond:
                    for signed in chunk:
                        if self._history and self._history[0] is signed:
                            self._history.popleft()

    def _replace(self, session: Session, name: str, data: bytes) -> None:
        """NAME via a temporary name and posix-rename: readers see the old or the new file."""
        final = posixpath.join(self.endpoint.remote_dir, name)
        # Our own temporary name: `tachiai audit checkpoint` may write beside the daemon.
        part = posixpath.join(self.endpoint.remote_dir, f".{name}.{os.getpid()}.part")
        with session.converted("replace", final):
            with session.sftp.open(part, "wb") as fh:
                session.sftp.chmod(part, 0o644)
                fh.write(data)
            if session.sftp.stat(part).st_size != len(data):
                raise PartnerUnavailable(N_("a short write to {name}{name2}").format(
                                             name=self.name, name2=name))
            try:
                # posix-rename@openssh.com: atomic, and replaces the target.
                session.sftp.posix_rename(part, final)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.ENOENT, errno.EPERM):
                    raise
                # Without the extension, a v3 rename refuses an existing target
                # (draft-ietf-secsh-filexfer-02 §6.5): remove it first (a moment without it).
                with contextlib.suppress(FileNotFoundError):
                    session.sftp.remove(final)
                session.sftp.rename(part, final)


def _chunks(batch: list[SignedCheckpoint]) -> Iterator[tuple[str, list[SignedCheckpoint]]]:
    """(history file, notes) groups in order: one day each, at most one write request big."""
    chunk: list[SignedCheckpoint] = []
    day = ""
    size = 0
    for signed in batch:
        this_day = history_name(signed.checkpoint.time_ns)
        length = len(signed.note.encode("utf-8")) + 1
        if chunk and (this_day != day or size + length > _CHUNK):
            yield day, chunk
            chunk, size = [], 0
        chunk.append(signed)
        day = this_day
        size += length
    if chunk:
        yield day, chunk
