"""Dropped files' names before they are checked: the keyed hash that stands in for them.

Owns the name key (`<state_dir>/keys/name.key`, 32 random bytes, mode 0600, made once) and the
HMAC-SHA256 of a name's bytes made with it (`name_hmac`). Until a name has passed
`policies.file_names`, only this hash is written into events, logs and the state database; a
refused name is never stored at all. The key is never logged or written anywhere else.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from hashlib import sha256
from pathlib import Path

from gateway.errors import ConfigError, StorageError

KEY_BYTES = 32
KEY_FILE = "keys/name.key"
# A transfer whose name was refused records where it was dropped and the name's keyed hash, as
# `<outbox>//name-hmac:<hex>`. `str(Path)` never holds "//", so no real path reads as one.
_MARK = "//name-hmac:"


def key_path(state_dir: Path) -> Path:
    return state_dir / KEY_FILE


def name_hmac(key: bytes, raw: bytes) -> str:
    """The keyed hash (hex) of a name's bytes: stable for a name, useless without the key."""
    return hmac.new(key, raw, sha256).hexdigest()


def withheld_source(outbox: Path, digest: str) -> str:
    """The `source_path` of a transfer whose name may not be stored."""
    return f"{outbox}{_MARK}{digest}"


def withheld_hmac(source_path: str) -> str | None:
    """The name's keyed hash when `source_path` withholds the name, else None."""
    _folder, mark, digest = source_path.partition(_MARK)
    return digest if mark else None


def find_withheld(key: bytes, source_path: str) -> Path | None:
    """The outbox entry whose name has the recorded keyed hash, if it is still there.

    Raises:
        StorageError: when the outbox cannot be listed.
    """
    folder, _mark, digest = source_path.partition(_MARK)
    try:
        entries = os.listdir(os.fsencode(folder))
    except OSError as exc:
        raise StorageError(f"cannot list outbox {folder}: {exc.strerror}") from exc
    for raw in entries:
        if hmac.compare_digest(name_hmac(key, raw), digest):
            return Path(os.fsdecode(os.path.join(os.fsencode(folder), raw)))
    return None


def load_or_create_key(path: Path) -> bytes:
    """The name key in `path`, made on first use.

    Written into a private temporary file (O_EXCL, 0600), fsynced, then linked to its name,
    which fails if another process won the race; then whichever won is read. So the key file,
    once it exists, is always complete, and every process hashes with the same key.

    Raises:
        ConfigError: the file is readable by others, not a regular file, or not a key.
        StorageError: the key cannot be read or made.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(KEY_BYTES)
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
            return _read_key(path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot make the name key {path}: {exc.strerror}") from exc
    return key


def _read_key(path: Path) -> bytes:
    """Raises: FileNotFoundError (no key yet), ConfigError, StorageError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StorageError(f"cannot open the name key {path}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"the name key {path} is not a regular file")
        if info.st_mode & 0o077:
            raise ConfigError(f"the name key {path} can be read by other users",
                              hint=f"chmod 600 {path}, and find out who may have read it")
        data = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) != KEY_BYTES:
        raise ConfigError(f"the name key {path} is not {KEY_BYTES} bytes long",
                          hint="restore it from the state directory's backup")
    return data
