"""Sealing: the approved bytes into an AES-256 ZIP (WinZip AE-2), hashed in the same pass.

The payload is re-hashed while it is encrypted; if the hash differs from the one the witnesses
signed, the seal is discarded and every approval is void. The password is random (~143 bits),
kept only in the spool (0600) until delivery puts it on its own channel, then erased.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

import pyzipper

from gateway.errors import StorageError
from gateway.spool import CHUNK, open_regular, sync_dir

PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 24
_COMPRESSION = {"deflate": pyzipper.ZIP_DEFLATED, "store": pyzipper.ZIP_STORED}


@dataclass(frozen=True)
class Sealed:
    plain_sha256: str
    plain_size: int
    sealed_sha256: str
    sealed_size: int


def new_password() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def seal_zip(payload: Path, entry_name: str, out: Path, password: str, compression: str) -> Sealed:
    """Encrypt `payload` into `out` as one ZIP entry named `entry_name`.

    Raises:
        StorageError: when reading the payload or writing the archive fails.
    """
    tmp = out.with_name(f".{out.name}.tmp")
    plain = hashlib.sha256()
    size = 0
    try:
        with open_regular(payload) as src, pyzipper.AESZipFile(
            tmp, "w", compression=_COMPRESSION[compression], encryption=pyzipper.WZ_AES
        ) as zf:
            zf.setpassword(password.encode("ascii"))
            zf.setencryption(pyzipper.WZ_AES, nbits=256)
            with zf.open(entry_name, "w", force_zip64=True) as dst:
                while chunk := src.read(CHUNK):
                    plain.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
        os.chmod(tmp, 0o600)
        sealed_size, sealed_hex = _sync_and_hash(tmp)
        os.replace(tmp, out)
        sync_dir(out.parent)
    except OSError as exc:
        raise StorageError(f"cannot seal into {out.name}: {exc.strerror or exc}") from exc
    return Sealed(plain.hexdigest(), size, sealed_hex, sealed_size)


def _sync_and_hash(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
