"""SFTP pickup (取得): files a sender leaves on an SFTP server, pulled into the intake.

Each `[pickup.NAME]` source is polled; a new file is downloaded into a landing folder of its own
under the state directory (`<state>/pickup/NAME/`, mode 0700, the spool's file system), synced,
journalled, renamed into place and recorded; only then is the remote file removed (or moved to
`done_dir`). The landing folder is an outbox the daemon watches; files there are attributed to
the source's designated sender, since they belong to the daemon's own OS user. A crash at any
point leaves a journal entry that the next poll finishes: no file is lost or taken in twice.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.config.settings import Settings
from gateway.config.sources import PickupSource
from gateway.exchange.uploads import is_upload_name
from gateway.outbound import names
from gateway.outbound.intake import Outbox
from gateway.runtime import Runtime
from gateway.state import clock
from gateway.transports import HostKeyRefused, landing
from policies.file_names import check_name

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
        self.poller = landing.Poller("pickup", self._outage)
        for source in self.sources:
            landing.prepare(landing_folder(rt.settings, source.name), self._journal(source).folder)

    def outboxes(self) -> list[Outbox]:
        """The landing folders, as outboxes of their flows, for the intake tracker to watch."""
        return [
            Outbox(s.agreement, s.flow, landing_folder(self.rt.settings, s.name))
            for s in self.sources
        ]

    def poll_due(self) -> int:
        """Poll each source whose interval has passed; return how many files were pulled.

        Partner problems are logged (and recorded once per outage, a refused host key once),
        never raised; a refused host key stops the source until a restart.
        """
        pulled = 0
        for source in self.sources:
            poll = functools.partial(self.poll_once, source)
            pulled += self.poller.run(
                source.name, f"pickup.{source.name}", source.interval_seconds, poll
            )
        return pulled

    def poll_once(self, source: PickupSource) -> int:
        """Finish any journalled pickup, then pull every new file of one source.

        Raises:
            HostKeyRefused: the server's host key is not the pinned one (recorded first).
            PartnerUnavailable: the server is unreachable or refused us.
            StorageError: the landing folder cannot be written.
        """

        def refused(exc: HostKeyRefused) -> None:
            self._record(
                source,
                "pickup.host_key_refused",
                landing.host_key_data(exc),
                key=f"pickup:{source.name}:host-key:{clock.now_ns()}",
            )

        journal = self._journal(source)
        with landing.connected(source.sftp, refused) as session:
            for path, entry in journal.entries():
                self._finish(source, session, path, entry)
            pulled = 0
            for remote in landing.listing(session):
                if not remote.plain or is_upload_name(remote.name):
                    continue  # a link or folder, or still being uploaded
                raw = remote.name.encode("utf-8", "surrogateescape")
                why = landing.refusal(remote.name)
                if why is None and not (verdict := check_name(raw)).accepted:
                    why = "is refused (" + ", ".join(r.rule for r in verdict.reasons) + ")"
                if why is not None:
                    # Named by its keyed hash only: a refused name is written nowhere.
                    digest = names.name_hmac(names.load_or_create_key(
                        names.key_path(self.rt.settings.state_dir)), raw)
                    self.poller.note(source.name, "the file name with name_hmac %s on the "
                                     "server %s; it is left there", digest, why)
                    continue
                pulled += self._pull(source, session, remote)
            return pulled

    def _pull(self, source: PickupSource, session: Session, remote: landing.Remote) -> int:
        folder = landing_folder(self.rt.settings, source.name)
        if os.path.lexists(folder / remote.name):
            return 0  # an earlier file of that name is not taken in yet; next poll
        digest = landing.fetch(session, remote, folder)
        if digest is None:
            log.info(
                "pickup %s: %s is still changing; it is fetched later", source.name, remote.name
            )
            return 0
        entry = {**remote.as_dict(), "sha256": digest}
        self._finish(source, session, self._journal(source).add(entry), entry)
        return 1

    def _finish(
        self, source: PickupSource, session: Session, journal: Path, entry: dict[str, Any]
    ) -> None:
        """Land the file, record it, then remove (or move) the remote copy; drop the journal."""
        remote = landing.Remote(str(entry["name"]), int(entry["size"]), int(entry["mtime"]))
        name, digest = remote.name, str(entry["sha256"])
        folder = landing_folder(self.rt.settings, source.name)
        if landing.blocked(folder, name, folder / name):
            self.poller.note(source.name, "%r waits: a file of that name is not taken in yet", name)
            return
        landing.land(folder, name, folder / name)
        data = {
            "source": source.name,
            "remote": source.sftp.url(name),
            "file_name": name,
            "size": remote.size,
            "sha256": digest,
            "handler": source.handler,
            "flow": source.flow,
            "host_key": session.fingerprint,
        }
        self._record(source, "pickup.received", data, key=f"pickup:{source.name}:{digest}:{name}")
        where = landing.remove_fetched(session, [remote], source.after, source.done_dir)[name]
        if where != "left":
            self._record(
                source,
                "pickup.removed",
                {**data, "remote_after": where},
                key=f"pickup:{source.name}:{digest}:{name}:removed",
            )
        self._journal(source).done(journal)
        log.info("pickup %s: %s pulled (%s bytes)", source.name, name, remote.size)

    def _outage(self, name: str, what: str, data: dict[str, object]) -> None:
        source = self.rt.settings.pickups[name]
        self._record(
            source,
            f"pickup.{what}",
            {"source": name, **data},
            key=f"pickup:{name}:{what}:{clock.now_ns()}",
        )

    def _record(self, source: PickupSource, kind: str, data: dict[str, object], key: str) -> None:
        landing.record(self.rt, kind, data, key, agreement=source.agreement, actor=source.handler)

    def _journal(self, source: PickupSource) -> landing.Journal:
        return landing.Journal(self.rt.settings.state_dir / "pickup-journal" / source.name)
