"""The daemon's checkpoint service: signs the ledger's tree head and sends it out of reach.

While events arrive it signs a checkpoint (C2SP signed note, Ed25519) at least every
`interval_seconds` and at most once in that time (each one costs an fsync per place); when none
arrive it signs nothing. It keeps a copy in the ledger and writes it to every configured place:
folders (ideally on another mount), remote SFTP folders (gateway.evidence.checkpoint_sftp) and
syslog. The signing key is a 0600 file under the state folder, never in the database. On a
PostgreSQL ledger shared by several nodes only the holder of `audit.locks.SignerLock` signs.
The places themselves: `checkpoint_sinks` (and `checkpoint_sftp`); the key: `signing_key`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from audit.checkpoints import (
    SignedCheckpoint,
)
from audit.checkpoints import parse as parse_checkpoint
from audit.errors import AuditError, LedgerIntegrityError
from audit.notes import NoteError, NoteVerifier
from gateway.config.routes import SftpEndpoint
from gateway.config.settings import Settings
from gateway.errors import ConfigError
from gateway.evidence.checkpoint_sftp import SftpSink
from gateway.evidence.checkpoint_sinks import CheckpointSink, DirectorySink, SyslogSink
from gateway.evidence.signing_key import load_or_create_key
from gateway.i18n import N_
from gateway.state import clock

if TYPE_CHECKING:
    from audit.checkpointer import Checkpointer
    from audit.ledger import Ledger
    from audit.locks import SignerLock
    from gateway.evidence.ledger_guard import LedgerGuard

log = logging.getLogger(__name__)

KEY_FILE = "keys/ledger.key"
CLOSE_SECONDS = 10.0  # at shutdown, what remote places may still take before we go


@dataclass(frozen=True)
class CheckpointSettings:
    """Where the key lives and where checkpoints go ([ledger] in tachiai.toml)."""

    key_path: Path
    key_name: str
    directories: tuple[Path, ...] = ()
    syslog: str = ""  # "" (off), a socket path such as /dev/log, udp://host:port, tcp://…
    interval_seconds: float = 1.0
    state_dir: Path | None = None  # to warn when every copy is beside the database
    sftp: tuple[SftpEndpoint, ...] = ()  # remote folders ([[ledger.sftp]])

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckpointSettings:
        """The [ledger] settings of tachiai.toml (`ledger_*` in gateway.config.settings). Where they
        are not set the defaults apply: the key in state/keys/ledger.key, checkpoints in
        state/checkpoints, no SFTP folder ([[ledger.sftp]]), no syslog, every second."""
        state = settings.state_dir
        key = getattr(settings, "ledger_checkpoint_key", None) or state / KEY_FILE
        dirs = getattr(settings, "ledger_checkpoint_dirs", None) or (state / "checkpoints",)
        return cls(
            key_path=Path(key),
            key_name=f"tachiai-{settings.party}-ledger",
            directories=tuple(Path(d) for d in dirs),
            syslog=str(getattr(settings, "ledger_syslog", "") or ""),
            interval_seconds=float(getattr(settings, "ledger_checkpoint_interval_seconds", 1.0)),
            state_dir=state,
            sftp=tuple(settings.ledger_sftp),
        )


class CheckpointService:
    """Signs checkpoints in a background thread; `checkpoint_now` signs one at once.

    Call `start()` at daemon start (after the start-up flush), `notify()` after each flush,
    and `stop()` at shutdown (it signs a last checkpoint).
    """

    def __init__(
        self,
        ledger: Ledger,
        settings: CheckpointSettings,
        sinks: Sequence[CheckpointSink] | None = None,
        guard: LedgerGuard | None = None,
    ) -> None:
        """`guard` checks, before each signing, that the gateway wrote every new event.

        Raises: KeyFileError (the key file), ConfigError (a place)."""
        self.ledger = ledger
        self.guard = guard
        self.settings = settings
        self.signer = load_or_create_key(settings.key_path, settings.key_name)
        self.verifier = self.signer.verifier()
        self.sinks: list[CheckpointSink] = list(sinks) if sinks is not None else _sinks(settings)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._checkpointer: Checkpointer | None = None
        self._told: str | None = None  # the last "signed by …; resuming after …" logged
        # Several nodes on one PostgreSQL ledger: exactly one signs at a time (a session lock,
        # taken over when its holder's connection ends). One SQLite ledger has one daemon.
        self._signer_lock: SignerLock | None = None
        if ledger.engine.dialect.name == "postgresql":
            from audit.locks import SignerLock  # the database layer: loaded by the ledger now

            self._signer_lock = SignerLock(ledger.engine)
        self._unpublished: dict[str, SignedCheckpoint] = {}
        #: Rounds of the thread so far, and the checkpoints it signed in them (read by tests
        #: and the bench: an idle ledger must cost a size query per round, not a signature).
        self.ticks = 0
        self.signed = 0

    def check_start(self) -> None:
        """Resume from the last checkpoint and check every event after it (before anything
        else runs at start: a forged event must stop the daemon before it does any work).

        Raises:
            LedgerIntegrityError: when the ledger no longer matches what this key signed, or
                holds an event after it that the gateway did not write.
        """
        with self._lock:
            self._resume()
            self._check_tail(self.ledger.size())

    def start(self) -> None:
        """Resume from the last checkpoint and start the thread.

        Raises:
            LedgerIntegrityError: when the ledger no longer matches what this key signed, or
                holds an event after it that the gateway did not write.
        """
        with self._lock:
            self._resume()
            self._check_tail(self.ledger.size())
        state = self.settings.state_dir
        if state is not None and all(
            isinstance(s, DirectorySink) and (s.folder == state or state in s.folder.parents)
            for s in self.sinks
        ):
            log.warning(
                "ledger checkpoints are kept only under the state folder: a database "
                "owner could roll them back; set [ledger] checkpoint_dirs to another "
                "mount, a [[ledger.sftp]] folder or syslog"
            )
        self._thread = threading.Thread(target=self._run, name="checkpoints", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Events were appended: sign soon (cheap; call after every flush)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread, sign a last checkpoint of whatever was appended and close the
        places (remote ones get a few seconds to take what they have not yet taken)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        try:
            self.checkpoint_now()
        except (AuditError, OSError) as exc:
            log.error("cannot sign the last ledger checkpoint: %s", exc)
        if self._signer_lock is not None:
            self._signer_lock.release()  # another node may sign from now on
        self.close()

    def close(self, timeout: float = CLOSE_SECONDS) -> list[str]:
        """Close every place within `timeout` seconds in all; the names of those left behind
        (each has logged what it missed)."""
        deadline = time.monotonic() + timeout
        return [
            sink.name
            for sink in self.sinks
            if not sink.close(max(0.0, deadline - time.monotonic()))
        ]

    def checkpoint_now(self) -> SignedCheckpoint | None:
        """Sign the ledger as it is and publish it; None when nothing new was appended.

        Raises:
            LedgerIntegrityError: when the ledger contradicts what this key signed before.
            AuditError: when the ledger cannot be read or written.
        """
        with self._lock:
            if self._checkpointer is None:
                self._resume()
            assert self._checkpointer is not None
            # Only the events checked here are signed, however many arrive meanwhile.
            size = self.ledger.size()
            self._check_tail(size)
            signed = self._checkpointer.next(clock.now_ns(), size)
            if signed is not None:
                for sink in self.sinks:
                    self._unpublished[sink.name] = signed
            self._publish()  # the places out of the database owner's reach come first
            if signed is not None:
                self.ledger.add_checkpoint(signed)
                if self.guard is not None:
                    self.guard.covered(signed.checkpoint.size)
            return signed

    def _check_tail(self, size: int) -> None:
        """Raises: LedgerIntegrityError (an event the gateway did not write)."""
        if self.guard is not None and self._checkpointer is not None:
            self.guard.check(self._checkpointer.frontier.size, size, self._signed_size)

    def _signed_size(self) -> int:
        """The size covered by the latest checkpoint in the ledger that this key signed."""
        best = 0
        origin = self.ledger.origin
        for note, source in self.ledger.checkpoints():
            try:
                cp = parse_checkpoint(note, source, self.verifier).checkpoint
            except NoteError:
                continue
            if cp.origin == origin:
                best = max(best, cp.size)
        return best

    def _resume(self) -> None:
        known: list[tuple[str, str]] = []
        for sink in self.sinks:
            if isinstance(sink, DirectorySink):
                try:
                    known += sink.notes()
                except (OSError, NoteError) as exc:
                    log.warning("cannot read checkpoints in %s: %s", sink.name, exc)
        from audit.checkpointer import Checkpointer  # the daemon's, not `audit verify`'s

        checkpointer = Checkpointer(self.ledger, self.signer, lock=self._signer_lock)
        last = checkpointer.resume(known)
        self._checkpointer = checkpointer
        told = (f"ledger checkpoints signed by {self.verifier.to_text()}; "
                + (f"resuming after {last.describe()}" if last else "none signed yet"))
        if told != self._told:  # the start resumes twice (before and after recovery): once
            log.info("%s", told)
            self._told = told

    def _publish(self) -> None:
        for sink in self.sinks:
            signed = self._unpublished.get(sink.name)
            if signed is None:
                continue
            try:
                sink.publish(signed, self.verifier)
            except OSError as exc:
                log.error("cannot write the ledger checkpoint to %s (retried): %s", sink.name, exc)
                continue
            del self._unpublished[sink.name]

    def _run(self) -> None:
        interval = self.settings.interval_seconds
        reported = False
        last_signed = float("-inf")
        while not self._stopping.is_set():
            # Woken by a flush of ours, or after `interval` to see whether another process (a
            # command run by a person) appended: then the ledger's size is read, nothing more.
            self._wake.wait(interval)
            self._wake.clear()
            # At most one signature per interval, however often flushes wake us.
            rest = last_signed + interval - time.monotonic()
            if self._stopping.wait(max(rest, 0.0)):
                return
            try:
                if self.checkpoint_now() is not None:
                    last_signed = time.monotonic()
                    self.signed += 1
                reported = False
            except LedgerIntegrityError as exc:
                if not reported:  # fail closed: sign nothing, say so once
                    log.critical("NOT signing ledger checkpoints: %s", exc)
                    reported = True
            except (AuditError, OSError) as exc:
                log.error("ledger checkpoint failed (retried): %s", exc)
            self.ticks += 1


def public_key(settings: CheckpointSettings) -> NoteVerifier:
    """The verifier key auditors need (makes the signing key if there is none yet).

    Raises:
        KeyFileError: when the key file is unusable.
    """
    return load_or_create_key(settings.key_path, settings.key_name).verifier()


def _sinks(settings: CheckpointSettings) -> list[CheckpointSink]:
    sinks: list[CheckpointSink] = [DirectorySink(d) for d in settings.directories]
    sinks += [SftpSink(endpoint) for endpoint in settings.sftp]
    if settings.syslog:
        try:
            sinks.append(SyslogSink(settings.syslog))
        except OSError as exc:
            raise ConfigError(N_("cannot open syslog {syslog}: {exc}").format(
                                  syslog=settings.syslog, exc=exc)) from exc
    return sinks
