"""Secret keys the gateway keeps as files under its state folder (`keys/`, mode 0600): the
onward guard's fingerprint key and the key of file names' hashes.

A key is made once and never rewritten: written into a private temporary file (O_EXCL, 0600),
fsynced, then linked to its name, which fails if another process won the race; then whichever
won is read. So a key file, once it exists, is always complete and every process uses the same
key. A key is never logged; messages name its path only.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from gateway.errors import ConfigError, StorageError
from gateway.i18n import N_

log = logging.getLogger(__name__)


def load_or_create(path: Path, size: int, what: str) -> bytes:
    """The key in `path`, made on first use; `what` names it in messages ("the name key").

    Raises:
        ConfigError: the file is readable by others, not a regular file, or not a key.
        StorageError: the key cannot be read or made.
    """
    try:
        return read(path, size, what)
    except FileNotFoundError:
        return create(path, size, what)


def read(path: Path, size: int, what: str) -> bytes:
    """Raises: FileNotFoundError (no key yet), ConfigError, StorageError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StorageError(N_("cannot open {what} {path}: {strerror}").format(
                               what=what, path=path, strerror=exc.strerror)) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(N_("{what} {path} is not a regular file").format(
                                  what=what, path=path))
        if info.st_mode & 0o077:
            raise ConfigError(N_("{what} {path} can be read by other users").format(
                                  what=what, path=path),
                              hint=N_("chmod 600 {path}, and find out who may have read it").format(
                                       path=path))
        data = os.read(fd, size + 1)
    except OSError as exc:
        raise StorageError(N_("cannot read {what} {path}: {strerror}").format(
                               what=what, path=path, strerror=exc.strerror)) from exc
    finally:
        os.close(fd)
    if len(data) != size:
        raise ConfigError(N_("{what} {path} is not {size} bytes long").format(
                              what=what, path=path, size=size),
                          hint=N_("restore it from the state directory's backup"))
    return data


def create(path: Path, size: int, what: str) -> bytes:
    """Make a new random key at `path`, or read the one another process made first.

    Raises:
        ConfigError / StorageError: as `read`, or the key cannot be written.
    """
    key = secrets.token_bytes(size)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return read(path, size, what)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise StorageError(N_("cannot create {what} {path}: {strerror}").format(
                               what=what, path=path, strerror=exc.strerror)) from exc
    log.warning("created %s %s", what, path)  # the path, never the key
    return key
