"""Dropped files' names before they are checked: the keyed hash that stands in for them.

Owns the name key (`<state_dir>/keys/name.key`, 32 random bytes, mode 0600, made once) and the
HMAC-SHA256 of a name's bytes made with it (`name_hmac`). Until a name has passed
`policies.file_names`, only this hash is written into events, logs and the state database; a
refused name is never stored at all. The key is never logged or written anywhere else.
"""

from __future__ import annotations

import hmac
import os
from hashlib import sha256
from pathlib import Path

from gateway.errors import StorageError
from gateway.i18n import N_
from gateway.state import keyfiles

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
        raise StorageError(N_("cannot list outbox {folder}: {strerror}").format(
                               folder=folder, strerror=exc.strerror)) from exc
    for raw in entries:
        if hmac.compare_digest(name_hmac(key, raw), digest):
            return Path(os.fsdecode(os.path.join(os.fsencode(folder), raw)))
    return None


def load_or_create_key(path: Path) -> bytes:
    """The name key in `path`, made on first use (`gateway.state.keyfiles`).

    Raises:
        ConfigError: the file is readable by others, not a regular file, or not a key.
        StorageError: the key cannot be read or made.
    """
    return keyfiles.load_or_create(path, KEY_BYTES, "the name key")
