"""SFTP pickup (取得): files a sender leaves on an SFTP server, pulled into the intake.

Each `[pickup.NAME]` source is polled; a new file is downloaded into a landing folder of its own
under the state directory (`<state>/pickup/NAME/`, mode 0700, the spool's file system), synced,
journalled, renamed into place and recorded; only then is the remote file removed (or moved to
`done_dir`). The landing folder is an outbox the daemon watches; files there are attributed to
the source's designated sender, since they belong to the daemon's own OS user. A crash at any
point leaves a journal entry that the next poll finishes: no file is lost or taken in twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from audit.events import Draft
from gateway import clock
from gateway.config import PickupSource, Settings
from gateway.errors import PartnerUnavailable, StorageError
from gateway.intake import Outbox, is_upload_name
from gateway.runtime import Runtime
from gateway.spool import sync_dir, write_atomic
from gateway.transports import HostKeyRefused

if TYPE_CHECKING:
    from gateway.transports.sftp import Session

log = logging.getLogger(__name__)


def landing_folder(settings: Settings, source: str) -> Path:
    """Where files pulled from `source` land: an outbox only the daemon can write."""
    return settings.state_dir / "pickup" / source


def designated_sender(settings: Settings, source_path: Path) -> str | None:
    """The designated sender a file is attributed to if it was pulled by a pickup, else None.

    `source_path` is the path the file was taken in from (Transfer.source_path).
    """
    for source in settings.pickups.values():
        if source_path.parent == landing_folder(settings, source.name):
            return source.handler
    return None


class Pickup:
    """Polls every configured source; call `poll_due()` from the daemon's loop."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.sources = tuple(rt.settings.pickups.values())
        self._next: dict[str, float] = {}
        self._refused: set[str] = set()  # host key refused: not polled again until a restart
        for source in self.sources:
            for folder in (landing_folder(rt.settings, source.name), self._journal(source)):
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.chmod(folder, 0o700)

    def outboxes(self) -> list[Outbox]:
        """The landing folders, as outboxes of their flows, for the intake tracker to watch."""
        return [
            Outbox(s.agreement, s.flow, landing_folder(self.rt.settings, s.name))
            for s in self.sources
        ]

    def poll_due(self) -> int:
        """Poll each source whose interval has passed; return how many files were pulled.

        Partner problems are logged (and a refused host key recorded), never raised.
        """
        now = time.monotonic()
        pulled = 0
        for source in self.sources:
            if source.name in self._refused or self._next.get(source.name, 0.0) > now:
                continue
            self._next[source.name] = now + source.interval_seconds
            try:
                pulled += self.poll_once(source)
            except HostKeyRefused as exc:
                self._refused.add(source.name)
                log.error("pickup %s stopped: %s", source.name, exc.diagnostics())
            except PartnerUnavailable as exc:
                log.warning("pickup %s: %s", source.name, exc)
        return pulled

    def poll_once(self, source: PickupSource) -> int:
        """Finish any journalled pickup, then pull every new file of one source.

        Raises:
            HostKeyRefused: the server's host key is not the pinned one (recorded first).
            PartnerUnavailable: the server is unreachable or refused us.
            StorageError: the landing folder cannot be written.
        """
        from gateway.transports.sftp import Session  # paramiko only where it is used

        try:
            with Session(source.sftp) as session:
                for entry in sorted(self._journal(source).glob("*.json")):
                    self._finish(source, session, entry)
                pulled = 0
                for name, size, mtime in session.list_files():
                    if is_upload_name(name) or not name.isprintable():
                        continue  # still being uploaded, or a name we will not take
                    pulled += self._pull(source, session, name, size, mtime)
                return pulled
        except HostKeyRefused as exc:
            self._record(
                source,
                "pickup.host_key_refused",
                {
                    "host": exc.host,
                    "port": exc.port,
                    "expected": list(exc.expected),
                    "offered": exc.offered,
                },
                key=f"pickup:{source.name}:host-key:{clock.now_ns()}",
            )
            raise

    def _pull(
        self, source: PickupSource, session: Session, name: str, size: int, mtime: int
    ) -> int:
        landing = landing_folder(self.rt.settings, source.name)
        final = landing / name
        if os.path.lexists(final):
            return 0  # an earlier file of that name is not taken in yet; next poll
        part = landing / f".{name}.part"
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh:
                got, digest, after = session.download(name, fh)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise StorageError(f"cannot write into {landing}: {exc.strerror}") from exc
        if got != size or after != (size, mtime):
            part.unlink(missing_ok=True)
            log.info("pickup %s: %s is still changing; it is fetched later", source.name, name)
            return 0
        entry = {"name": name, "size": size, "mtime": mtime, "sha256": digest}
        key = hashlib.sha256(f"{name}\0{digest}".encode("utf-8", "surrogateescape")).hexdigest()
        journal = self._journal(source) / f"{key[:32]}.json"
        write_atomic(journal, json.dumps(entry).encode(), mode=0o600)
        self._finish(source, session, journal)
        return 1

    def _finish(self, source: PickupSource, session: Session, journal: Path) -> None:
        """Land the file, record it, then remove (or move) the remote copy; drop the journal."""
        entry = json.loads(journal.read_text(encoding="utf-8"))
        name, digest = str(entry["name"]), str(entry["sha256"])
        landing = landing_folder(self.rt.settings, source.name)
        part = landing / f".{name}.part"
        if os.path.lexists(part) and not os.path.lexists(landing / name):
            os.replace(part, landing / name)
            sync_dir(landing)
        data = {
            "source": source.name,
            "remote": source.sftp.url(name),
            "file_name": name,
            "size": entry["size"],
            "sha256": digest,
            "handler": source.handler,
            "flow": source.flow,
            "host_key": session.fingerprint,
        }
        self._record(source, "pickup.received", data, key=f"pickup:{source.name}:{digest}:{name}")
        remote = {(n, s, m) for n, s, m in session.list_files()}
        if (name, entry["size"], entry["mtime"]) in remote:
            if source.after == "rename" and source.done_dir is not None:
                where = session.move(name, source.done_dir)
            else:
                session.remove(name)
                where = "deleted"
            self._record(
                source,
                "pickup.removed",
                {**data, "remote_after": where},
                key=f"pickup:{source.name}:{digest}:{name}:removed",
            )
        journal.unlink(missing_ok=True)
        log.info("pickup %s: %s pulled (%s bytes)", source.name, name, entry["size"])

    def _record(self, source: PickupSource, kind: str, data: dict[str, object], key: str) -> None:
        self.rt.store.record(
            [
                Draft(
                    key=key,
                    kind=kind,
                    time_ns=clock.now_ns(),
                    subject=None,
                    agreement=source.agreement,
                    actor=source.handler,
                    data=data,
                )
            ]
        )
        self.rt.flush()

    def _journal(self, source: PickupSource) -> Path:
        return self.rt.settings.state_dir / "pickup-journal" / source.name
