"""The spool: the gateway's own working copies, one folder per transfer, mode 0700.

A dropped file is moved here by rename (atomic, same file system) before anything reads it; the
outbox entry is never the working copy. Nothing here follows a symbolic link, blocks on a FIFO,
or reads a file with other hard links. Files are written to a temporary name, synced, then
renamed, so a crash leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gateway.errors import StorageError
from gateway.i18n import N_

CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """What lstat says about an entry, before anything opens it."""

    kind: str  # "file", "symlink", "fifo", "directory", "socket", "device"
    size: int
    links: int
    uid: int


class Spool:
    """Folders under `<state>/spool/<transfer id>/`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def folder(self, transfer_id: str) -> Path:
        return self.root / transfer_id

    def payload(self, transfer_id: str) -> Path:
        """The gateway's private copy: what is checked, approved, sealed."""
        return self.folder(transfer_id) / "payload"

    def original(self, transfer_id: str) -> Path:
        """The private copy as checked, kept when only part of it is provided (a split)."""
        return self.folder(transfer_id) / "original"

    def split(self, transfer_id: str, keep: list[tuple[int, int]]) -> tuple[int, str]:
        """Make the payload the given byte ranges of the original; keep the original.

        Idempotent: the ranges are always cut from `original`, so a repeat after a crash
        writes the same bytes.

        Raises:
            StorageError: when the spool cannot be written.
        """
        payload, original = self.payload(transfer_id), self.original(transfer_id)
        if not original.exists():
            os.replace(payload, original)
            sync_dir(original.parent)
        digest = hashlib.sha256()
        parts: list[bytes] = []
        with open_regular(original) as src:
            for start, end in keep:
                src.seek(start)
                chunk = src.read(end - start)
                digest.update(chunk)
                parts.append(chunk)
        data = b"".join(parts)
        write_atomic(payload, data)
        return len(data), digest.hexdigest()

    def dropped(self, transfer_id: str) -> Path:
        """The outbox entry as it was dropped (moved here by rename), whatever it is."""
        return self.folder(transfer_id) / "dropped"

    def take(self, source: Path, transfer_id: str) -> Path:
        """Move an outbox entry (whatever it is) into the spool by rename.

        Raises:
            StorageError: when the rename fails (e.g. the outbox is on another file system).
        """
        folder = self.folder(transfer_id)
        folder.mkdir(mode=0o700, exist_ok=True)
        target = self.dropped(transfer_id)
        try:
            # rename(2) moves a symlink or FIFO itself, never what it points at.
            os.rename(source, target)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                raise StorageError(
                    N_("the outbox and the spool are on different file systems"),
                    hint=N_("put gateway.state_dir and gateway.outbox_dir on one file system"),
                ) from exc
            raise StorageError(
                N_("cannot move a dropped file into the spool: {error}").format(error=exc.strerror)
            ) from exc
        sync_dir(folder)
        sync_dir(source.parent)
        return target


def copy_private(source: Path, target: Path) -> tuple[int, str]:
    """Copy a dropped file into a file only the gateway owns, hashing the bytes it copies.

    The sender still owns the dropped inode and might hold a write descriptor opened before the
    rename; from here on only the private copy is read, so what is checked, approved and
    sealed are the same bytes.

    Raises:
        StorageError: see `open_regular`, or when the copy cannot be written.
    """
    digest = hashlib.sha256()
    size = 0
    tmp = target.with_name(f".{target.name}.tmp")
    with open_regular(source) as src:
        try:
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
            with os.fdopen(fd, "wb") as dst:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise StorageError(N_("cannot copy into the spool: {error}")
                           .format(error=exc.strerror or exc)) from exc
    sync_dir(target.parent)
    return size, digest.hexdigest()


def inspect(path: Path) -> Entry:
    """lstat an entry without following links.

    Raises:
        FileNotFoundError: when it is gone.
    """
    st = os.lstat(path)
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        kind = "symlink"
    elif stat.S_ISREG(mode):
        kind = "file"
    elif stat.S_ISFIFO(mode):
        kind = "fifo"
    elif stat.S_ISDIR(mode):
        kind = "directory"
    elif stat.S_ISSOCK(mode):
        kind = "socket"
    else:
        kind = "device"
    return Entry(kind=kind, size=st.st_size, links=st.st_nlink, uid=st.st_uid)


def open_regular(path: Path) -> BinaryIO:
    """Open a spool file for reading, refusing anything but a plain single-link file.

    Raises:
        StorageError: when the path is a link, FIFO, device or has other hard links.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise StorageError(N_("cannot open spool file {name}: {error}")
                           .format(name=path.name, error=exc.strerror)) from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise StorageError(N_("spool file {name} is not a plain file with a single link")
                           .format(name=path.name))
    return os.fdopen(fd, "rb")


def sha256_file(path: Path) -> tuple[int, str]:
    """Size and SHA-256 (hex) of a spool file, read once.

    Raises:
        StorageError: see `open_regular`.
    """
    digest = hashlib.sha256()
    size = 0
    with open_regular(path) as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def write_atomic(path: Path, data: bytes, mode: int = 0o600, *, durable: bool = True,
                 fresh: bool = False) -> None:
    """Write bytes to a temporary name beside `path`, sync, and rename over it.

    `fresh`: a new, unguessable temporary name made with O_EXCL, for a folder others may write
    in (a name they put there first is never opened). `durable=False`: no fsync of the file and
    its folder, for what is derived and written again after a restart.
    """
    suffix = f".{secrets.token_hex(6)}.tmp" if fresh else ".tmp"
    tmp = path.with_name(f".{path.name}{suffix}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags | (os.O_EXCL if fresh else os.O_TRUNC), mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    if durable:
        sync_dir(path.parent)


def refuse_linked(folder: Path, what: str) -> None:
    """Refuse one of our own folders whose configured path passes through a symbolic link.

    Raises:
        StorageError: the real path differs from the configured (lexical) one.
    """
    real = os.path.realpath(folder)
    if real != str(folder):
        raise StorageError(
            N_("{what} ({folder}) passes through a symbolic link (to {real}); "
               "nothing was taken from it").format(what=what, folder=folder, real=real),
            hint=N_("configure the real folder, without links, and check who made the link"),
        )


def sync_dir(folder: Path) -> None:
    """fsync a directory so a rename in it survives a power cut."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
