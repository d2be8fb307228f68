"""Local delivery: a sealed file into a folder the recipient reads (受信フォルダ).

The file is written under a temporary name, synced and renamed to the name fixed by the transfer
id, so a repeat after a crash replaces the same file with the same bytes: exactly one file
arrives; its manifest follows the same way. It never writes outside its folder and converts
every OSError to PartnerUnavailable.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from gateway.errors import PartnerUnavailable
from gateway.i18n import N_
from gateway.state.spool import sync_dir
from gateway.transports import DeliveryRefused, Parcel, Receipt

_COPY = 1 << 20


class LocalTransport:
    """Puts parcels into one folder on this machine (or a mounted share)."""

    kind = "local"

    def __init__(self, party: str, inbox: Path) -> None:
        self.party = party
        self.inbox = inbox

    def send(
        self,
        parcel: Parcel,
        *,
        renamed_before: bool = False,
        committing: Callable[[str], None] | None = None,
    ) -> Receipt:
        """Copy, sync, rename into the inbox.

        Raises:
            PartnerUnavailable: the inbox cannot be written.
        """
        target = self.inbox / parcel.name
        tmp = self.inbox / f".{parcel.name}.part"
        try:
            self.inbox.mkdir(parents=True, exist_ok=True)
            refuse_links(self.inbox, f"the inbox of {self.party}")
            if renamed_before and not os.path.lexists(tmp) and not os.path.lexists(target):
                # The rename happened before a crash and the recipient has taken the file.
                return Receipt(self.kind, str(target), {"taken_by_partner": True})
            # Whatever is at the temporary name (a leftover, or a link planted by someone who
            # can write the inbox) is removed, never followed; O_EXCL|O_NOFOLLOW makes sure.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640
            )
            with open(parcel.path, "rb") as src, os.fdopen(fd, "wb") as dst:
                os.fchmod(dst.fileno(), 0o640)
                shutil.copyfileobj(src, dst, _COPY)
                dst.flush()
                os.fsync(dst.fileno())
            if committing is not None:
                committing(str(target))
            os.replace(tmp, target)
            sync_dir(self.inbox)
            if parcel.manifest is not None:
                # After the file: a receiving gateway takes the pair only once this is there.
                _place(self.inbox, parcel.manifest_name, parcel.manifest)
        except OSError as exc:
            raise PartnerUnavailable(
                N_("cannot deliver to the inbox of {party}: {value}").format(
                    party=self.party, value=exc.strerror or exc)
            ) from exc
        return Receipt(self.kind, str(target), {})


def _place(folder: Path, name: str, data: bytes) -> None:
    """Write a small document to NAME via `.NAME.part` (never following a planted link)."""
    tmp = folder / f".{name}.part"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    with os.fdopen(fd, "wb") as dst:
        os.fchmod(dst.fileno(), 0o640)
        dst.write(data)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, folder / name)
    sync_dir(folder)


def refuse_links(folder: Path, what: str) -> None:
    """Refuse a folder whose path passes through a symbolic link (configured paths are lexical).

    Raises:
        DeliveryRefused: the real path differs from the configured one.
    """
    real = os.path.realpath(folder)
    if real != str(folder):
        raise DeliveryRefused(
            N_("{what} ({folder}) passes through a symbolic link (to {real}); nothing was "
               "written").format(what=what, folder=folder, real=real),
            hint=N_("configure the real folder, without links, and check who made the link"),
        )
