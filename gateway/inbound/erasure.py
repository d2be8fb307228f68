"""Encrypted-at-rest copies of held data (保有データ), erased by destroying their key (暗号化消去).

Owns the per-file keys (kept by `gateway.state.keys_store`) and the format: AES-256-GCM in
1 MiB chunks whose nonces count and flag the last chunk, so an altered, cut or reordered copy
fails. It never writes plaintext to disk and never logs or records a key.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import StorageError
from gateway.i18n import N_
from gateway.state import keys_store, schema
from gateway.state.spool import sync_dir
from gateway.state.store import Store

MAGIC = b"tachiai-rest-v1\n"
CHUNK = 1 << 20
KEY_BYTES = schema.KEY_BYTES
_PREFIX = 7  # random per file; with a 4-byte counter and a 1-byte flag: the 12-byte GCM nonce
_TAG = 16


@dataclass(frozen=True)
class Destroyed:
    """What `destroy_key` did: whether a key was there, and whether the WAL was emptied."""

    key_existed: bool
    wal_truncated: bool


def new_key(store: Store, holding: str, now_ns: int) -> bytes:
    """A fresh random key for `holding`, replacing one left by an interrupted intake.

    Raises:
        StorageError: the database cannot be written.
    """
    key = secrets.token_bytes(KEY_BYTES)
    keys_store.put(store, holding, key, now_ns)
    return key


def key_of(store: Store, holding: str) -> bytes | None:
    """The key of a holding's copy, or None once it was destroyed.

    Raises:
        StorageError: the database cannot be read.
    """
    return keys_store.get(store, holding)


def destroy_key(store: Store, holding: str) -> Destroyed:
    """Delete the key with `secure_delete` on, then checkpoint and truncate the WAL.

    `secure_delete` makes SQLite overwrite the deleted row with zeros in the page it rewrites;
    the TRUNCATE checkpoint copies that page into the database file and empties the WAL, which
    still held the page as it was when the key was written. See docs/receiving.md for what
    this does not reach (SSD remapping, copy-on-write file systems, backups).

    Raises:
        StorageError: the database cannot be written.
    """
    existed = keys_store.destroy(store, holding)
    return Destroyed(existed, keys_store.truncate_wal(store))


class RestWriter:
    """Encrypts a stream into `path` (temporary name, fsync, rename on `close`).

    `write` takes plaintext as it comes; the copy is hashed as it is written, so the caller can
    compare size and SHA-256 with what the sender declared before keeping the copy.
    """

    def __init__(self, path: Path, key: bytes, holding: str) -> None:
        self.path = path
        self._tmp = path.with_name(f".{path.name}.tmp")
        self._aead = AESGCM(key)
        self._aad = MAGIC + holding.encode("utf-8")
        self._prefix = secrets.token_bytes(_PREFIX)
        self._buf = bytearray()
        self._counter = 0
        self._digest = hashlib.sha256()
        self.size = 0
        try:
            fd = os.open(
                self._tmp,
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
            self._fh: BinaryIO = os.fdopen(fd, "wb")
            self._fh.write(MAGIC + self._prefix)
        except OSError as exc:
            raise StorageError(N_("cannot write {name}: {value}").format(
                                   name=path.name, value=exc.strerror or exc)) from exc

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Raises: StorageError when the copy cannot be written."""
        self._digest.update(data)
        self.size += len(data)
        self._buf += data
        # Strictly more than a chunk: the chunk written is then known not to be the last one.
        while len(self._buf) > CHUNK:
            self._emit(bytes(self._buf[:CHUNK]), last=False)
            del self._buf[:CHUNK]
        return len(data)

    def close(self) -> None:
        """Write the last chunk, sync and rename into place.

        Raises:
            StorageError: when the copy cannot be written.
        """
        self._emit(bytes(self._buf), last=True)
        self._buf.clear()
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            os.replace(self._tmp, self.path)
        except OSError as exc:
            raise StorageError(N_("cannot write {name}: {value}").format(
                                   name=self.path.name, value=exc.strerror or exc)) from exc
        sync_dir(self.path.parent)

    def abort(self) -> None:
        """Drop the unfinished copy."""
        self._buf.clear()
        self._fh.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> RestWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def _emit(self, plain: bytes, *, last: bool) -> None:
        nonce = _nonce(self._prefix, self._counter, last)
        try:
            self._fh.write(self._aead.encrypt(nonce, plain, self._aad))
        except OSError as exc:
            raise StorageError(N_("cannot write {name}: {value}").format(
                                   name=self.path.name, value=exc.strerror or exc)) from exc
        self._counter += 1


def read_plain(path: Path, key: bytes, holding: str) -> Iterator[bytes]:
    """The plaintext of an encrypted copy, chunk by chunk, each authenticated before it is given.

    Raises:
        StorageError: the copy cannot be read, or fails authentication (altered, truncated,
            swapped with another holding's copy, or the wrong key).
    """
    aead = AESGCM(key)
    aad = MAGIC + holding.encode("utf-8")
    damaged = StorageError(
        N_("the encrypted copy {path} fails authentication: it was altered, truncated or belongs "
           "to another holding; nothing was released").format(path=path),
        hint=N_("tell security; the provider can send the data again"),
    )
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(MAGIC) + _PREFIX)
            if len(head) != len(MAGIC) + _PREFIX or not head.startswith(MAGIC):
                raise damaged
            prefix = head[len(MAGIC) :]
            counter = 0
            chunk = fh.read(CHUNK + _TAG)
            while True:
                nxt = fh.read(CHUNK + _TAG) if len(chunk) == CHUNK + _TAG else b""
                last = not nxt
                try:
                    plain = aead.decrypt(_nonce(prefix, counter, last), chunk, aad)
                except InvalidTag:
                    raise damaged from None
                yield plain
                if last:
                    return
                counter += 1
                chunk = nxt
    except OSError as exc:
        raise StorageError(N_("cannot read {path}: {value}").format(
                               path=path, value=exc.strerror or exc)) from exc


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if counter >= 1 << 32:
        raise StorageError(N_("the held file is too large for one encrypted copy"))
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
