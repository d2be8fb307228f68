"""SFTP pickup on the receiving side (受信の取得): deliveries a provider leaves on an SFTP server.

Each `[inbound.pickup.NAME]` source is polled. A delivery is complete when the sealed file and
its `NAME.manifest.json` (送付票) are both there; both are downloaded into a landing folder of
the daemon's own, synced, journalled and renamed into the inbox — the manifest last, because
`gateway.inbound.arrivals` takes the manifest as the sign that a delivery is whole — recorded,
and only then removed on the server. Passwords come the same way from a separate account into
the local password folder. It never follows a remote link, never takes a name that could leave its
folder, and records names, sizes and hashes only (a password's hash never).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import faults, progress
from gateway.config.routes import SftpEndpoint
from gateway.config.settings import Settings
from gateway.config.sources import InboundPickupSource
from gateway.errors import ConfigError
from gateway.exchange.manifest import SUFFIX
from gateway.exchange.uploads import is_upload_name
from gateway.i18n import N_
from gateway.runtime import Runtime
from gateway.state import claims, clock
from gateway.state.spool import refuse_linked
from gateway.transports import HostKeyRefused, landing

if TYPE_CHECKING:
    from gateway.transports.sftp import Session

log = logging.getLogger(__name__)

MAX_MANIFEST = 1 << 20  # gateway.inbound.arrivals reads no more of a manifest than this
MAX_PASSWORD = 4096  # nor of a password document
PASSWORD_SUFFIX = ".password"  # noqa: S105 - a file name suffix


def landing_root(settings: Settings, source: str) -> Path:
    """The daemon's own folders for one source: landing folders and journals (0700)."""
    return settings.state_dir / "inbound-pickup" / source


@dataclass(frozen=True)
class Route:
    """One account a source is fetched from: its files (`delivery`) or its passwords."""

    kind: str  # "delivery" or "password"
    source: InboundPickupSource
    endpoint: SftpEndpoint
    folder: Path  # the landing folder (the state directory's file system)
    target: Path  # the inbox, or the password folder
    journal: landing.Journal

    @property
    def name(self) -> str:
        """For log lines and records: the source, or the source's password channel."""
        suffix = "" if self.kind == "delivery" else "/password_channel"
        return self.source.name + suffix

    @property
    def section(self) -> str:
        suffix = "" if self.kind == "delivery" else ".password_channel"
        return f"inbound.pickup.{self.source.name}{suffix}"


class InboundPickup:
    """Polls every `[inbound.pickup.NAME]` source; call `poll_due()` from the daemon's loop."""

    def __init__(self, rt: Runtime) -> None:
        """Prepare the landing folders.

        Raises:
            ConfigError: the inbox or password folder is on another file system than the state
                directory (fetched files could not be moved in by an atomic rename).
        """
        self.rt = rt
        self.poller = landing.Poller("inbound pickup", self._outage)
        self.routes: dict[str, Route] = {}
        inbound = rt.settings.inbound
        for source in inbound.pickups.values():
            root = landing_root(rt.settings, source.name)
            assert inbound.inbox is not None  # the configuration refuses a pickup without it
            routes = [_route("delivery", source, source.sftp, inbound.inbox, root)]
            if source.password_sftp is not None and inbound.password_channel is not None:
                routes.append(
                    _route("password", source, source.password_sftp, inbound.password_channel, root)
                )
            for route in routes:
                _prepare(route)
                self.routes[route.name] = route

    def poll_due(self) -> int:
        """Poll each account whose interval has passed; return how many deliveries and
        passwords were fetched. Never raises: partner problems are logged and recorded once
        per outage; a refused host key stops that account until a restart.
        """
        fetched = 0
        # Passwords first, so that a delivery fetched in the same pass finds its password.
        for route in sorted(self.routes.values(), key=lambda r: r.kind != "password"):
            poll = functools.partial(self.poll_once, route)
            fetched += self.poller.run(
                route.name, route.section, route.source.interval_seconds, poll
            )
        return fetched

    def poll_once(self, route: Route) -> int:
        """Finish what the journal holds, then fetch everything complete on one account; one
        node at a time per account (a node that finds another polling it fetches nothing).

        Raises:
            HostKeyRefused: the server's host key is not a pinned one (recorded first).
            PartnerUnavailable / DeliveryRefused: the server is unreachable or refused us.
            StorageError: a landing folder, the inbox or the journal cannot be written.
        """
        with self.rt.store.exclusive(f"pickup:{route.name}") as ours:
            if not ours:
                log.debug("pickup %s: another node is polling this account", route.name)
                return 0
            return self._poll(route)

    def _poll(self, route: Route) -> int:
        with landing.connected(route.endpoint, functools.partial(self._host_key, route)) as session:
            for path, entry in route.journal.entries():
                self._finish(route, session, path, entry)
            remotes = landing.listing(session)
            groups = (
                self._deliveries(route, remotes)
                if route.kind == "delivery"
                else self._passwords(route, remotes)
            )
            return sum(self._fetch(route, session, group) for group in groups)

    # -- what is complete on the server ------------------------------------------------------

    def _deliveries(
        self, route: Route, remotes: list[landing.Remote]
    ) -> list[tuple[landing.Remote, ...]]:
        """(sealed file, manifest) pairs whose both parts are plain files with safe names."""
        by_name = {r.name: r for r in remotes}
        limit = _sealed_limit(self.rt.settings)
        found: list[tuple[landing.Remote, ...]] = []
        for manifest in remotes:
            if not manifest.name.endswith(SUFFIX) or self._refused(route, manifest):
                continue
            sealed = by_name.get(manifest.name[: -len(SUFFIX)])
            if is_upload_name(manifest.name) or sealed is None or self._refused(route, sealed):
                continue  # an upload in progress, or the file itself is not there (yet)
            if manifest.size > MAX_MANIFEST or sealed.size > limit:
                self.poller.note(
                    route.name,
                    "%r is larger than intake.max_file_size allows; it is left on the server",
                    sealed.name,
                )
                continue
            found.append((sealed, manifest))  # the manifest last: it completes a delivery
        return found

    def _passwords(
        self, route: Route, remotes: list[landing.Remote]
    ) -> list[tuple[landing.Remote, ...]]:
        found: list[tuple[landing.Remote, ...]] = []
        for remote in remotes:
            if not remote.name.endswith(PASSWORD_SUFFIX) or self._refused(route, remote):
                continue
            if is_upload_name(remote.name):
                continue
            if remote.size > MAX_PASSWORD:
                self.poller.note(
                    route.name,
                    "%r is too large for a password document; it is left on the server",
                    remote.name,
                )
                continue
            found.append((remote,))
        return found

    def _refused(self, route: Route, remote: landing.Remote) -> bool:
        why = landing.refusal(remote.name)
        if why is None and not remote.plain:
            why = "is not a plain file (a link or a folder) and is never followed"
        if why is not None:
            self.poller.note(
                route.name,
                "%r on the server %s; it is left there: ask the provider what it is",
                remote.name,
                why,
            )
        return why is not None

    # -- fetching: download, journal, land, record, remove -----------------------------------

    def _fetch(self, route: Route, session: Session, group: tuple[landing.Remote, ...]) -> int:
        if any(os.path.lexists(route.target / r.name) for r in group):
            self.poller.note(
                route.name,
                "%r waits: a file of that name is still in %s",
                group[0].name,
                route.target,
            )
            return 0
        parts = []
        for remote in group:
            # A large download shows in `tachiai status` (gateway.progress) while it runs.
            with progress.step(self.rt.settings.state_dir, f"{route.name}/{remote.name}",
                               "download", claims.owner_id(self.rt.settings.node_name or None,
                                                           "pickup")):
                digest = landing.fetch(session, remote, route.folder)
            if digest is None:
                for other in group:
                    landing.part_path(route.folder, other.name).unlink(missing_ok=True)
                log.info(
                    "inbound pickup %s: %s is still changing; it is fetched later",
                    route.name,
                    remote.name,
                )
                return 0
            # A password's hash is never kept: it would be a way to test guesses.
            parts.append(
                remote.as_dict()
                if route.kind == "password"
                else {**remote.as_dict(), "sha256": digest}
            )
        entry = {"parts": parts, "fetched_ns": clock.now_ns()}
        path = route.journal.add(entry)
        faults.crash_point(f"after-{route.kind}-fetch")
        return self._finish(route, session, path, entry)

    def _finish(self, route: Route, session: Session, path: Path, entry: dict[str, Any]) -> int:
        """Land the parts (in order: the manifest last), record, remove remotely, drop the entry.

        Raises:
            StorageError: the inbox or password folder passes through a link, or cannot be
                written; the entry stays and the next poll tries again.
        """
        parts = [
            landing.Remote(str(p["name"]), int(p["size"]), int(p["mtime"])) for p in entry["parts"]
        ]
        refuse_linked(route.target, f"the folder of {route.section}")
        if any(landing.blocked(route.folder, r.name, route.target / r.name) for r in parts):
            self.poller.note(
                route.name,
                "%r waits: a file of that name is still in %s",
                parts[0].name,
                route.target,
            )
            return 0
        for remote in parts:
            landing.land(route.folder, remote.name, route.target / remote.name)
        key = (
            "inbound-pickup:"
            + hashlib.sha256(
                json.dumps([route.name, entry], sort_keys=True).encode("utf-8")
            ).hexdigest()[:32]
        )
        data: dict[str, object] = {
            "source": route.source.name,
            "what": route.kind,
            "remote": route.endpoint.url(),
            "host_key": session.fingerprint,
            "files": [{k: v for k, v in p.items() if k != "mtime"} for p in entry["parts"]],
        }
        landing.record(self.rt, "inbound.picked_up", data, key)
        faults.crash_point(f"after-{route.kind}-land")
        after, done_dir = (
            ("delete", None)
            if route.kind == "password"
            else (route.source.after, route.source.done_dir)
        )
        where = landing.remove_fetched(session, parts, after, done_dir)
        landing.record(
            self.rt, "inbound.pickup_removed", {**data, "remote_after": where}, f"{key}:removed"
        )
        route.journal.done(path)
        log.info(
            "inbound pickup %s: %s fetched into %s",
            route.name,
            " and ".join(r.name for r in parts),
            route.target,
        )
        return 1

    # -- records -------------------------------------------------------------------------------

    def _host_key(self, route: Route, exc: HostKeyRefused) -> None:
        landing.record(
            self.rt,
            "inbound.pickup_host_key_refused",
            {"source": route.source.name, "what": route.kind, **landing.host_key_data(exc)},
            f"inbound-pickup:{route.name}:host-key:{clock.now_ns()}",
        )

    def _outage(self, name: str, what: str, data: dict[str, object]) -> None:
        route = self.routes[name]
        landing.record(
            self.rt,
            f"inbound.pickup_{what}",
            {
                "source": route.source.name,
                "what": route.kind,
                "remote": route.endpoint.url(),
                **data,
            },
            f"inbound-pickup:{name}:{what}:{clock.now_ns()}",
        )


def _route(
    kind: str, source: InboundPickupSource, endpoint: SftpEndpoint, target: Path, root: Path
) -> Route:
    sub = "files" if kind == "delivery" else "passwords"
    return Route(
        kind, source, endpoint, root / sub, target, landing.Journal(root / f"journal-{sub}")
    )


def _prepare(route: Route) -> None:
    """Create the folders; the landing folder must share the target's file system.

    Raises:
        ConfigError: it does not (the final step would not be an atomic rename).
    """
    landing.prepare(route.folder, route.journal.folder)
    route.target.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.stat(route.folder).st_dev != os.stat(route.target).st_dev:
        key = "inbound.inbox" if route.kind == "delivery" else "inbound.password_channel"
        raise ConfigError(
            N_("{key} ({target}) is on another file system than "
               "gateway.state_dir").format(key=key, target=route.target),
            hint=N_("put them on one file system, so fetched files are moved in "
                    "by an atomic rename (never seen half-written)"),
        )


def _sealed_limit(settings: Settings) -> int:
    """The largest sealed file worth fetching: the plaintext limit, with room for the seal."""
    return settings.max_file_size + settings.max_file_size // 8 + (1 << 20)
