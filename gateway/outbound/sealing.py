"""Sealing (暗号化): the approved bytes into the agreement's encryption profile, hashed in one pass.

Profiles: `zip-aes256` (WinZip AE-2, AES-256; password by a separate route), `age` (age v1 to
the receiving handlers' X25519 keys; no password at all) and `xlsx-password+zip-aes256` (seed
003: the workbook itself encrypted with its own password, then zipped). The payload is hashed
while it is encrypted; the pipeline voids every approval if that hash differs from the signed
one. Passwords are random (~143 bits) and never logged; this module never sends anything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyzipper

from gateway import faults, progress
from gateway.errors import ConfigError, InputError, StorageError
from gateway.exchange.limits import MAX_WORKBOOK
from gateway.i18n import N_
from gateway.identity import age
from gateway.state.spool import CHUNK, open_regular, sha256_file, sync_dir
from policies.handlers import Registry
from policies.receivers import designated_receivers

PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 24
PROFILES = ("zip-aes256", "age", "xlsx-password+zip-aes256")
PASSWORD_PROFILES = ("zip-aes256", "xlsx-password+zip-aes256")
_COMPRESSION = {"deflate": pyzipper.ZIP_DEFLATED, "store": pyzipper.ZIP_STORED}


class SealRefused(InputError):
    """The approved file cannot be sealed under its profile (e.g. not a workbook)."""


@dataclass(frozen=True)
class Sealed:
    plain_sha256: str
    plain_size: int
    sealed_sha256: str
    sealed_size: int


def age_recipients(
    registry: Registry, agreement_id: str, party: str, on: dt.date
) -> list[tuple[str, str]]:
    """(name, age1…) of every receiving handler of `party` designated on that day with a key.

    Raises:
        ConfigError: nobody qualifies (fail closed: an age file to nobody is never made).
    """
    found = [
        (h.name, h.age_recipient)
        for h in designated_receivers(registry, agreement_id, party, on)
        if h.age_recipient is not None
    ]
    if not found:
        raise ConfigError(
            N_("no designated receiving handler of {party} has an age key for "
               "{agreement_id}").format(party=party, agreement_id=agreement_id),
            hint=N_('add age_recipient = "age1…" (from `age-keygen -y`) to a receiving handler '
                    "of that party in the registry"),
        )
    return found


def new_password() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def sealed_path(folder: Path, profile: str) -> Path:
    """Where the sealed file of a transfer lives in its spool folder."""
    return folder / ("sealed.age" if profile == "age" else "sealed.zip")


def sealed_intact(path: Path, size: int, sha256: str) -> bool:
    """Whether the sealed file still has the size and SHA-256 recorded when it was sealed.

    Raises:
        StorageError: the file cannot be read.
    """
    try:
        seen, digest = sha256_file(path)
        return seen == size and digest == sha256
    except OSError as exc:
        raise StorageError(N_("cannot read {name}: {value}").format(
                               name=path.name, value=exc.strerror or exc)) from exc


def suffix(profile: str) -> str:
    """The file name suffix a sealed file of this profile is delivered with."""
    return ".age" if profile == "age" else ".zip"


def password_document(zip_password: str, workbook_password: str | None = None) -> bytes:
    """What the password channel carries: the ZIP password alone, or both labelled."""
    if workbook_password is None:
        return (zip_password + "\n").encode("ascii")
    return (f"zip-password: {zip_password}\nworkbook-password: {workbook_password}\n").encode(
        "ascii"
    )


def seal_zip(
    payload: Path, entry_name: str, out: Path, password: str, compression: str, level: int = 6
) -> Sealed:
    """Encrypt `payload` into `out` as one ZIP entry named `entry_name`.

    `level` is zlib's (1 fastest … 9 smallest) when `compression` is "deflate". On CSV, 1 seals
    about three times faster than 6 for files about a third larger: the better choice when the
    link is fast and the CPU is not.

    Raises:
        StorageError: when reading the payload or writing the archive fails.
    """
    try:
        with open_regular(payload) as src, progress.watched(src, _size(src)):
            return _zip_stream(src, entry_name, out, password, compression, level)
    except OSError as exc:
        raise StorageError(N_("cannot seal into {name}: {value}").format(
                               name=out.name, value=exc.strerror or exc)) from exc


def seal_age(payload: Path, out: Path, recipients: Sequence[str]) -> Sealed:
    """Encrypt `payload` into `out` as an age v1 file to every recipient (`age1…`).

    The plaintext and the sealed bytes are both hashed in the encryption's single pass.

    Raises:
        KeyFileError: a recipient string is not a valid age X25519 recipient.
        StorageError: when reading the payload or writing the file fails.
    """
    keys = [age.parse_recipient(r) for r in recipients]
    tmp = out.with_name(f".{out.name}.tmp")
    plain = hashlib.sha256()
    size = 0

    def seen(chunk: memoryview) -> None:
        nonlocal size
        plain.update(chunk)
        size += len(chunk)
        faults.pause_point("seal-block")  # tests: a seal provably under way

    try:
        with (open_regular(payload) as src, _new_private(tmp) as dst,
              progress.watched(src, _size(src))):
            counted = age.encrypt(src, dst, keys, on_plain=seen)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, out)
        sync_dir(out.parent)
    except OSError as exc:
        raise StorageError(N_("cannot seal into {name}: {value}").format(
                               name=out.name, value=exc.strerror or exc)) from exc
    return Sealed(plain.hexdigest(), size, counted.sha256, counted.size)


def seal_workbook_zip(
    payload: Path,
    entry_name: str,
    out: Path,
    zip_password: str,
    workbook_password: str,
    compression: str,
    level: int = 6,
) -> Sealed:
    """Encrypt the workbook itself (ECMA-376 agile encryption), then zip it with AES-256.

    Seed 003: Excelシート・ZIPファイルの双方にパスワードを設定. The reported plaintext hash is
    of the approved workbook, read once.

    Raises:
        SealRefused: the payload is not an unencrypted OOXML workbook, or is too large.
        StorageError: when reading the payload or writing the archive fails.
    """
    # Imported here: msoffcrypto costs start-up time and only a seed-003 workbook needs it.
    from msoffcrypto.exceptions import EncryptionError, FileFormatError
    from msoffcrypto.format.ooxml import OOXMLFile

    digest = hashlib.sha256()
    plain = io.BytesIO()
    try:
        with open_regular(payload) as src:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                plain.write(chunk)
                if plain.tell() > MAX_WORKBOOK:
                    raise SealRefused(
                        N_("the workbook is over {max_workbook} bytes, too large to "
                           "encrypt").format(max_workbook=MAX_WORKBOOK),
                        hint=N_("split the workbook, or agree a zip-aes256 or age profile"),
                    )
    except OSError as exc:
        raise StorageError(
            N_("cannot read the payload: {value}").format(value=exc.strerror or exc)) from exc
    plain_size = plain.tell()
    encrypted = io.BytesIO()
    try:
        plain.seek(0)
        OOXMLFile(plain).encrypt(workbook_password, encrypted)
    except (EncryptionError, FileFormatError, ValueError, KeyError, OSError) as exc:
        raise SealRefused(
            N_("the file cannot be encrypted as an Excel workbook (is it an unencrypted .xlsx?): "
               "{name}").format(name=exc.__class__.__name__),
            hint=N_("drop the workbook as saved by Excel, without a password of its own"),
        ) from None
    del plain
    encrypted.seek(0)
    try:
        sealed = _zip_stream(encrypted, entry_name, out, zip_password, compression, level)
    except OSError as exc:
        raise StorageError(N_("cannot seal into {name}: {value}").format(
                               name=out.name, value=exc.strerror or exc)) from exc
    return Sealed(digest.hexdigest(), plain_size, sealed.sealed_sha256, sealed.sealed_size)


def _zip_stream(
    src: BinaryIO, entry_name: str, out: Path, password: str, compression: str, level: int
) -> Sealed:
    """Stream `src` into a one-entry AES-256 ZIP at `out` (temporary name, sync, rename)."""
    tmp = out.with_name(f".{out.name}.tmp")
    plain = hashlib.sha256()
    size = 0
    with (
        _new_private(tmp) as raw,
        pyzipper.AESZipFile(
            raw,
            "w",
            compression=_COMPRESSION[compression],
            compresslevel=level if compression == "deflate" else None,
            encryption=pyzipper.WZ_AES,
        ) as zf,
    ):
        zf.setpassword(password.encode("ascii"))
        zf.setencryption(pyzipper.WZ_AES, nbits=256)
        with zf.open(entry_name, "w", force_zip64=True) as dst:
            while chunk := src.read(CHUNK):
                plain.update(chunk)
                dst.write(chunk)
                size += len(chunk)
                faults.pause_point("seal-block")  # tests: a seal provably under way
    # pyzipper seeks back to finish each local header, so the archive is hashed after writing.
    sealed_size, sealed_hex = _sync_and_hash(tmp)
    os.replace(tmp, out)
    sync_dir(out.parent)
    return Sealed(plain.hexdigest(), size, sealed_hex, sealed_size)


def _size(fh: BinaryIO) -> int:
    return os.fstat(fh.fileno()).st_size


def _new_private(path: Path) -> BinaryIO:
    """A new file (0600, replacing a leftover temporary) opened for writing."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


def _sync_and_hash(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
