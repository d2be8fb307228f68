"""Landing files fetched over SFTP (取得): the crash-safe steps both pickups share.

A remote file is downloaded into `.NAME.part` in a landing folder of the daemon's own (0700),
synced and journalled; it is renamed into place, recorded, and only then removed (or moved) on
the server, and only while it is still the plain file that was fetched. Remote names are
untrusted: one that could leave its folder, a control character or a link is never taken.
`Poller` runs each source on its interval: a partner's problem is logged and recorded once per
outage, a refused host key stops the source until a restart, and nothing is raised to the
daemon. Used by `gateway.outbound.pickup` (sending side) and `gateway.inbound.pickup` (receiving
side).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.events import Draft
from gateway import progress
from gateway.config.routes import SftpEndpoint
from gateway.errors import PartnerRefused, PartnerUnavailable, StorageError, TachiaiError
from gateway.i18n import N_
from gateway.state import clock
from gateway.state.spool import sync_dir, write_atomic
from gateway.transports import HostKeyRefused

if TYPE_CHECKING:
    from gateway.runtime import Runtime
    from gateway.transports.sftp import Session

log = logging.getLogger(__name__)

_MAX_NAME_BYTES = 255  # NAME_MAX of the local file systems we land on


@dataclass(frozen=True)
class Remote:
    """An entry of a remote folder as the server listed it (lstat's view: links stay links)."""

    name: str
    size: int
    mtime: int
    plain: bool = True  # a plain file, not a link, folder or device

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "mtime": self.mtime}


def listing(session: Session) -> list[Remote]:
    """Every entry of the endpoint's remote folder, names sorted.

    Raises:
        PartnerUnavailable / DeliveryRefused: the folder cannot be listed.
    """
    return [Remote(n, s, m, plain) for n, s, m, plain in session.list_entries()]


def refusal(name: str) -> str | None:
    """Why a name a partner's server listed is never taken, or None when it may be.

    SFTP names are the server's to choose (a hostile or broken server may send anything):
    separators, `..`, control characters and undecodable bytes could leave the landing folder,
    forge a log line or break a record, so they are refused here, before any use.
    """
    if name in ("", ".", ".."):
        return "is not a file name"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if ".." in name:
        return "contains '..'"
    if not name.isprintable():
        return "contains a control character"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not UTF-8"
    if len(encoded) > _MAX_NAME_BYTES:
        return "is too long"
    return None


def part_path(folder: Path, name: str) -> Path:
    """Where a download lands before it is complete: a dot name no intake ever takes."""
    return folder / f".{name}.part"


def fetch(session: Session, remote: Remote, folder: Path) -> str | None:
    """Download `remote` into `.NAME.part` in `folder` (0600, never through a link) and sync it.

    Returns the SHA-256 of what was written, or None (and no part file) when the remote file
    changed, or stopped being a plain file, while it was read: a later poll fetches it again.

    Raises:
        StorageError: the landing folder cannot be written.
        PartnerUnavailable / DeliveryRefused: the download failed (the part is left to be
            overwritten by the next attempt).
    """
    part = part_path(folder, remote.name)
    try:
        fd = os.open(
            part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        with os.fdopen(fd, "wb") as fh:
            with progress.watched(fh, remote.size):
                got, digest, after = session.download(remote.name, fh)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise StorageError(N_("cannot write into {folder}: {value}").format(
                               folder=folder, value=exc.strerror or exc)) from exc
    if got != remote.size or after != (remote.size, remote.mtime):
        part.unlink(missing_ok=True)
        return None
    return digest


def blocked(folder: Path, name: str, target: Path) -> bool:
    """True when a landed part waits and something else already has its final name."""
    return os.path.lexists(part_path(folder, name)) and os.path.lexists(target)


def land(folder: Path, name: str, target: Path) -> None:
    """Rename the part of NAME to `target` (atomic: the same file system), then sync.

    A part that is gone was renamed before (a crash came after), so there is nothing to do;
    a `target` that exists is never replaced (check `blocked` first).

    Raises:
        StorageError: the rename failed (another file system, permissions).
    """
    part = part_path(folder, name)
    if not os.path.lexists(part) or os.path.lexists(target):
        return
    try:
        os.rename(part, target)  # moves the entry itself, never what a link points at
    except OSError as exc:
        hint = (
            N_("put gateway.state_dir and the folder on one file system")
            if exc.errno == errno.EXDEV
            else None
        )
        raise StorageError(
            N_("cannot move a fetched file into {parent}: {strerror}").format(
                parent=target.parent, strerror=exc.strerror), hint=hint
        ) from exc
    sync_dir(target.parent)
    sync_dir(folder)


def remove_fetched(
    session: Session, fetched: Sequence[Remote], after: str, done_dir: str | None
) -> dict[str, str]:
    """Delete each fetched file on the server, or move it into `done_dir` when `after` is
    "rename" — only while it is still the plain file that was fetched (same size and mtime).

    Returns name → "deleted", the new remote path, or "left" (gone, or changed since: a file
    we did not fetch is never removed).

    Raises:
        PartnerUnavailable / DeliveryRefused: the server refused or went away.
    """
    current = {(r.name, r.size, r.mtime) for r in listing(session) if r.plain}
    where: dict[str, str] = {}
    for remote in fetched:
        if (remote.name, remote.size, remote.mtime) not in current:
            where[remote.name] = "left"
        elif after == "rename" and done_dir is not None:
            where[remote.name] = session.move(remote.name, done_dir)
        else:
            session.remove(remote.name)
            where[remote.name] = "deleted"
    return where


class Journal:
    """Fetches under way, one JSON file (0600) each: written once the download is synced,
    removed once the remote copy is gone. What is in it is finished at the next poll."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def add(self, entry: Mapping[str, Any]) -> Path:
        """Raises: StorageError when the journal cannot be written."""
        raw = json.dumps(entry, sort_keys=True).encode("utf-8", "surrogateescape")
        path = self.folder / f"{hashlib.sha256(raw).hexdigest()[:32]}.json"
        try:
            write_atomic(path, raw, mode=0o600)
        except OSError as exc:
            raise StorageError(N_("cannot write the journal {folder}: {strerror}").format(
                                   folder=self.folder, strerror=exc.strerror)) from exc
        return path

    def entries(self) -> list[tuple[Path, dict[str, Any]]]:
        """Raises: StorageError when an entry cannot be read (it is ours: a damaged disk)."""
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                found.append((path, dict(json.loads(path.read_text(encoding="utf-8")))))
            except (OSError, ValueError) as exc:
                raise StorageError(N_("cannot read the journal entry {path}: {exc}").format(
                                       path=path, exc=exc)) from exc
        return found

    def done(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        sync_dir(self.folder)


def prepare(*folders: Path) -> None:
    """Create the daemon's own landing and journal folders, mode 0700."""
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)


@contextmanager
def connected(
    endpoint: SftpEndpoint, refused: Callable[[HostKeyRefused], None]
) -> Iterator[Session]:
    """An SFTP session to `endpoint`; a refused host key is passed to `refused`, then raised.

    Raises:
        HostKeyRefused: the server's host key is not a pinned one (nothing was read).
        PartnerUnavailable / DeliveryRefused: unreachable, or our key refused.
    """
    from gateway.transports.sftp import Session  # paramiko only where it is used

    try:
        with Session(endpoint) as session:
            yield session
    except HostKeyRefused as exc:
        refused(exc)
        raise


def host_key_data(exc: HostKeyRefused) -> dict[str, object]:
    """What a refused host key event records: where, the pinned fingerprints, the offered one."""
    return {
        "host": exc.host,
        "port": exc.port,
        "expected": list(exc.expected),
        "offered": exc.offered,
    }


def record(
    rt: Runtime,
    kind: str,
    data: dict[str, object],
    key: str,
    *,
    agreement: str | None = None,
    actor: str | None = None,
) -> None:
    """Record one pickup event (names, sizes, hashes: never a file's content) and flush it.

    Raises:
        StorageError: the state database or the ledger cannot be written.
    """
    rt.store.record(
        [
            Draft(
                key=key,
                kind=kind,
                time_ns=clock.now_ns(),
                subject=None,
                agreement=agreement,
                actor=actor,
                data=data,
            )
        ]
    )
    rt.flush()


#: record(source, what, data): "unreachable" when an outage starts, "reachable" when it ends.
Outage = Callable[[str, str, dict[str, object]], None]


class Poller:
    """Runs each source on its interval and keeps what must be said only once.

    `what` names the kind of source in log lines ("pickup", "inbound pickup"); `outage` records
    the start and end of each outage in the ledger.
    """

    def __init__(self, what: str, outage: Outage) -> None:
        self.what = what
        self.outage = outage
        self._next: dict[str, float] = {}
        self._stopped: set[str] = set()  # host key refused: not polled again until a restart
        self._out: set[str] = set()  # unreachable since the last poll that worked
        self._noted: set[tuple[str, str]] = set()

    def run(self, source: str, section: str, interval: float, poll: Callable[[], int]) -> int:
        """Call `poll` when `source` is due; return its count, or 0 on any failure (logged).

        `section` is the configuration table an operator fixes ("inbound.pickup.isa").
        """
        now = time.monotonic()
        if source in self._stopped or self._next.get(source, 0.0) > now:
            return 0
        self._next[source] = now + interval
        try:
            taken = poll()
        except HostKeyRefused as exc:
            self._stopped.add(source)
            log.error(
                "%s %s stopped: %s\n  next: ask the partner, by another channel, for their host "
                "key fingerprint; if it really changed, pin the new key in known_hosts of [%s] "
                "and restart the daemon; otherwise this may be an attack: tell security",
                self.what,
                source,
                exc,
                section,
            )
            return 0
        except (PartnerUnavailable, PartnerRefused) as exc:
            # A refusal (our key or folder refused) is polled again too: the operator fixes it
            # at the partner, and the next poll finds it fixed without a restart.
            if source not in self._out:
                self._out.add(source)
                log.error(
                    "%s %s: %s\n  next: check host, port, user, key_file and remote_dir of [%s] "
                    "with the partner; it is polled again every %g s and nothing is taken or "
                    "removed meanwhile",
                    self.what,
                    source,
                    exc,
                    section,
                    interval,
                )
                self.outage(source, "unreachable", {"error": str(exc)})
            else:
                log.debug("%s %s is still unreachable: %s", self.what, source, exc)
            return 0
        except TachiaiError as exc:
            log.error("%s %s: %s", self.what, source, exc.diagnostics())
            return 0
        except Exception:
            log.exception("%s %s: internal error; it is polled again later", self.what, source)
            return 0
        if source in self._out:
            self._out.discard(source)
            log.info("%s %s is reachable again", self.what, source)
            self.outage(source, "reachable", {})
        return taken

    def note(self, source: str, message: str, *args: object) -> None:
        """Log a warning about one thing on a server once per process (it stays unchanged)."""
        key = (source, message % args)
        if key not in self._noted:
            self._noted.add(key)
            log.warning("%s %s: " + message, self.what, source, *args)
