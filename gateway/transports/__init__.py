"""Transports (送達経路): the small interfaces every way of reaching a partner implements.

A `Transport` puts one sealed file (a `Parcel`) with a partner, exactly once, under a name
fixed by the transfer id; a `PasswordChannel` puts the password on a route of its own. Each
implementation converts its library's errors (paramiko, smtplib, socket, OSError) into the
errors below, so nothing foreign escapes this package; none ever logs a password or a key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway.errors import PartnerRefused
from gateway.i18n import N_


class DeliveryRefused(PartnerRefused):
    """The partner answered and said no (permission denied, a name taken, a size limit).

    Permanent, so not a `PartnerUnavailable`: retrying the same thing will not help. The
    transfer fails at once and an operator retries it with `tachiai transfers retry ID` after
    fixing the cause.
    """

    default_hint = N_(
        "fix the cause named above (with the partner if it is theirs), then run "
        "`tachiai transfers retry ID`"
    )


class HostKeyRefused(DeliveryRefused):
    """The server's SSH host key is not the one pinned for it: never accepted, never added.

    Permanent (a refusal, not an outage): the key stays wrong until an operator pins the new
    one or finds the attack, so a delivery fails at once and a pickup stops polling.
    """

    def __init__(self, host: str, port: int, expected: tuple[str, ...], offered: str) -> None:
        self.host = host
        self.port = port
        self.expected = expected
        self.offered = offered
        super().__init__(
            N_("the SSH host key of {host}:{port} is not the pinned one: expected {expected}, "
               "the server offered {offered}; nothing was sent or fetched").format(
                host=host, port=port, expected=" or ".join(expected), offered=offered),
            hint=N_("ask the partner, by another channel, for their host key fingerprint; if it "
                    "really changed, replace the entry for {entry} in known_hosts with the new "
                    "key (`ssh-keyscan -p {port} {host}`, checked against that fingerprint; then "
                    "`tachiai transfers retry ID` for a failed delivery; pickups and checkpoint "
                    "places try again by themselves); otherwise this may be an attack: tell "
                    "security").format(entry=host if port == 22 else f"[{host}]:{port}",
                                       port=port, host=host),
        )


@dataclass(frozen=True)
class Parcel:
    """One sealed file in the spool, ready to go, and the name it must arrive under."""

    transfer_id: str
    path: Path
    name: str  # the final name at the partner, fixed by the transfer id (exactly once)
    size: int
    sha256: str  # of the sealed bytes
    file_name: str  # the original name, for people (mail subject)
    # The delivery manifest (送付票, gateway.exchange.manifest), put beside the sealed file as
    # NAME.manifest.json after the file itself is in place; None sends no manifest.
    manifest: bytes | None = None

    @property
    def manifest_name(self) -> str:
        """NAME.manifest.json: fixed by the transfer id, like the file's own name."""
        return f"{self.name}.manifest.json"


@dataclass(frozen=True)
class Receipt:
    """Where a file or password was put; `details` go into the ledger (never a secret)."""

    kind: str  # "local", "sftp", "mail", "folder", "retrieval"
    location: str
    details: Mapping[str, str | int | bool] = field(default_factory=dict)


class Transport(Protocol):
    """A way to put a sealed file with a partner."""

    kind: str

    def send(
        self,
        parcel: Parcel,
        *,
        renamed_before: bool = False,
        committing: Callable[[str], None] | None = None,
    ) -> Receipt:
        """Deliver `parcel` exactly once.

        `committing(location)` is called just before the step that makes the file visible to
        the partner (a rename), so the caller can record the intent; `renamed_before` says a
        previous attempt got that far, so a file that is gone now was taken by the partner.
        A parcel's manifest goes after the file, by the same temporary-name-then-rename rule,
        so a receiving gateway that waits for the manifest never sees half a delivery; when
        the partner already took the file, no manifest is written (it would be an orphan).

        Raises:
            PartnerUnavailable: unreachable or a transient fault; retry later.
            DeliveryRefused: the partner refused; do not retry blindly.
        """
        ...


class PasswordChannel(Protocol):
    """A route for the password of a sealed file that is never the file's own route."""

    kind: str

    def issue(self, parcel: Parcel, document: bytes) -> Receipt:
        """Put the password document for `parcel` on this route (idempotent).

        Raises:
            PartnerUnavailable / DeliveryRefused: as for `Transport.send`.
        """
        ...
