"""Local delivery: the sealed file into the recipient's inbox, its password on its own channel.

Both are written under a temporary name, synced and renamed to a name fixed by the transfer id,
so a repeat after a crash replaces the same file with the same bytes: exactly one file arrives.
The password goes first, so a recipient never holds a ZIP nobody can open.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Recipient
from gateway.errors import PartnerUnavailable
from gateway.spool import sync_dir, write_atomic


@dataclass(frozen=True)
class Delivered:
    path: Path
    password_path: Path | None


def delivered_name(transfer_id: str, file_name: str) -> str:
    return f"{file_name}.{transfer_id}.zip"


def deliver_local(recipient: Recipient, sealed: Path, name: str, password: str | None) -> Delivered:
    """Place the sealed file (and the password, if any) with the recipient.

    Raises:
        PartnerUnavailable: when the inbox or password folder cannot be written.
    """
    password_path = None
    try:
        if password is not None:
            recipient.password_channel.mkdir(parents=True, exist_ok=True, mode=0o700)
            password_path = recipient.password_channel / f"{name}.password"
            write_atomic(password_path, (password + "\n").encode("ascii"), mode=0o600)
        recipient.inbox.mkdir(parents=True, exist_ok=True)
        target = recipient.inbox / name
        tmp = recipient.inbox / f".{name}.part"
        with open(sealed, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, target)
        sync_dir(recipient.inbox)
    except OSError as exc:
        raise PartnerUnavailable(
            f"cannot deliver to the inbox of {recipient.party}: {exc.strerror or exc}"
        ) from exc
    return Delivered(target, password_path)
