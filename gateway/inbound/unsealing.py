"""Opening what arrived sealed (復号): an AES ZIP (with, for seed 003, a password-protected
workbook inside) or an age file, decrypted straight into the holding's encrypted-at-rest copy.

The plaintext never touches the disk, and never more bytes than the manifest declares (a
decompression bomb or a swapped file is cut off). It never logs a password; every failure is
a `Reason` the arrival records, with the fix.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from pathlib import Path

import pyzipper

from gateway.errors import ConfigError, KeyFileError
from gateway.exchange.limits import MAX_WORKBOOK
from gateway.exchange.manifest import Manifest
from gateway.i18n import N_
from gateway.identity import age
from gateway.inbound import erasure
from gateway.inbound.holdings import Holding
from gateway.runtime import Runtime
from gateway.state import clock
from gateway.state.spool import CHUNK, inspect, open_regular
from policies.reasons import Reason

DATA = "data.enc"  # the encrypted-at-rest copy in a holding's folder
_MAX_PASSWORD_DOC = 4096


def store_at_rest(rt: Runtime, h: Holding, m: Manifest, folder: Path) -> Reason | None:
    """Decrypt the sealed file into an encrypted-at-rest copy, checking the plaintext hash."""
    if m.size > rt.settings.max_file_size:
        return Reason(
            "inbound.too-large",
            f"the file is {m.size} bytes, over the limit of "
            f"{rt.settings.max_file_size} (intake.max_file_size); ask the provider to "
            "split it, or the administrator to raise the limit",
        )
    key = erasure.new_key(rt.store, h.id, clock.now_ns())
    writer = erasure.RestWriter(folder / DATA, key, h.id)
    limited = _Limited(writer, m.size)
    try:
        if m.profile == "age":
            reason = _open_age(rt, folder / "sealed", limited)
        else:
            reason = _open_zip(folder, m, limited)
    except _TooLarge:
        reason = Reason(
            "inbound.plain-hash",
            "the file decrypts to more bytes than the manifest declares; it was not kept",
        )
    except BaseException:
        writer.abort()
        raise
    if reason is None and (writer.size, writer.sha256) != (m.size, m.sha256):
        reason = Reason(
            "inbound.plain-hash",
            "the decrypted file's size or SHA-256 is not the "
            "one the witnesses approved: it is not the approved data; ask the "
            "provider to send it again",
        )
    if reason is not None:
        writer.abort()
        erasure.destroy_key(rt.store, h.id)
        return reason
    writer.close()
    return None


def _open_zip(folder: Path, m: Manifest, out: _Limited) -> Reason | None:
    password = folder / "password"
    if not os.path.lexists(password):
        return Reason(
            "inbound.password-missing",
            "no password arrived for this ZIP (the "
            "inbound password_channel is not configured); configure it, then "
            "`tachiai holdings retry ID`",
        )
    if (reason := plain_file(password)) is not None:
        return reason
    with open_regular(password) as fh:
        zip_password, book_password = _passwords(fh.read(_MAX_PASSWORD_DOC + 1))
    if zip_password is None or (m.profile != "zip-aes256") != (book_password is not None):
        return Reason(
            "inbound.password",
            "the password document is not the one for this "
            "profile; ask the provider to send the password again",
        )
    try:
        with pyzipper.AESZipFile(folder / "sealed") as zf:
            infos = zf.infolist()
            if len(infos) != 1 or infos[0].filename != m.file_name:
                return Reason(
                    "inbound.zip-entries",
                    "the ZIP must hold exactly the one file the manifest names",
                )
            if not infos[0].flag_bits & 0x1:
                return Reason(
                    "inbound.not-encrypted",
                    "the ZIP entry is not encrypted; the agreement requires an encrypted file",
                )
            zf.setpassword(zip_password.encode("ascii"))
            with zf.open(infos[0]) as src:
                if book_password is None:
                    while chunk := src.read(CHUNK):
                        out.write(chunk)
                    return None
                book = src.read(MAX_WORKBOOK + 1)
    except (
        RuntimeError,
        zipfile.BadZipFile,
        zlib.error,
        ValueError,
        EOFError,
        KeyError,
        NotImplementedError,
        OSError,
    ) as exc:
        return Reason(
            "inbound.decrypt",
            "the ZIP does not open with the password that came "
            f"for it, or is damaged ({exc.__class__.__name__}); ask the provider to "
            "send the file and its password again",
        )
    return _open_workbook(book, book_password, out)


def _open_workbook(book: bytes, password: str, out: _Limited) -> Reason | None:
    """seed 003: the workbook inside the ZIP has a password of its own."""
    # Imported here: msoffcrypto costs start-up time and only a seed-003 workbook needs it.
    from msoffcrypto.exceptions import DecryptionError, FileFormatError, InvalidKeyError
    from msoffcrypto.format.ooxml import OOXMLFile

    if len(book) > MAX_WORKBOOK:
        return Reason("inbound.too-large", "the workbook is too large to open here")
    plain = io.BytesIO()
    try:
        encrypted = OOXMLFile(io.BytesIO(book))
        encrypted.load_key(password=password)
        encrypted.decrypt(plain)
    except (
        DecryptionError,
        FileFormatError,
        InvalidKeyError,
        ValueError,
        KeyError,
        OSError,
        AssertionError,
    ) as exc:
        return Reason(
            "inbound.decrypt",
            "the workbook does not open with its password, or is "
            f"damaged ({exc.__class__.__name__}); ask the provider to send it again",
        )
    out.write(plain.getvalue())
    return None


def _open_age(rt: Runtime, sealed: Path, out: _Limited) -> Reason | None:
    path = rt.settings.inbound.age_identity
    if path is None:
        return Reason(
            "inbound.age-identity",
            "an age file arrived but no inbound.age_identity "
            "is configured; configure it, then `tachiai holdings retry ID`",
        )
    try:
        if os.stat(path).st_mode & 0o077:
            raise ConfigError(N_("{path} is readable by other users").format(
                                  path=path), hint=N_("chmod 600 {path}").format(
                                                                             path=path))
        identities = age.parse_identities(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(N_("cannot read the age identity {path}: {exc}").format(
                              path=path, exc=exc)) from exc
    except KeyFileError as exc:
        raise ConfigError(f"{path}: {exc}", hint=exc.hint) from exc
    try:
        with open_regular(sealed) as src:
            age.decrypt(src, out, identities)  # type: ignore[arg-type]
    except age.AgeError as exc:
        return Reason("inbound.decrypt", f"{exc}; ask the provider to send the file again")
    return None


def plain_file(path: Path) -> Reason | None:
    try:
        entry = inspect(path)
    except FileNotFoundError:
        return Reason("inbound.missing", f"{path.name} is missing from the delivery")
    if entry.kind != "file" or entry.links != 1:
        return Reason(
            "inbound.not-a-file",
            f"the delivered {path.name} is a {entry.kind} (or "
            "has other hard links), not a plain file; it was not opened",
        )
    return None


def _passwords(doc: bytes) -> tuple[str | None, str | None]:
    """(zip, workbook) from `gateway.outbound.sealing.password_document`'s two forms."""
    if len(doc) > _MAX_PASSWORD_DOC:
        return None, None
    try:
        lines = doc.decode("ascii").splitlines()
    except UnicodeDecodeError:
        return None, None
    if len(lines) == 1 and ":" not in lines[0] and lines[0].strip():
        return lines[0].strip(), None
    fields = dict(line.split(": ", 1) for line in lines if ": " in line)
    return fields.get("zip-password"), fields.get("workbook-password")


class _TooLarge(Exception):
    """More plaintext than the manifest declared (a decompression bomb, or a swapped file)."""


class _Limited:
    """Writes through to the at-rest copy, refusing more bytes than declared."""

    def __init__(self, writer: erasure.RestWriter, limit: int) -> None:
        self.writer = writer
        self.limit = limit

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self.writer.size + len(data) > self.limit:
            raise _TooLarge
        return self.writer.write(data)
