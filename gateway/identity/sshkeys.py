"""SSH keys of witnesses: load private keys, write new ed25519 keys, read and print public keys.

Owns the OpenSSH key formats (RFC 4253 §6.6, RFC 5656, RFC 8709, and FIDO2 security keys of
PROTOCOL.u2f, public half only) on `cryptography` alone.
It must never put key material (private or public bytes) into an error message or a log, and
never use a private key file that group or others can read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
import struct
from pathlib import Path
from typing import NoReturn

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.errors import KeyFileError
from gateway.i18n import N_
from gateway.identity.securitykeys import (
    SK_ECDSA,
    SK_ED25519,
    SecurityKey,
    security_key_blob,
    security_key_from_blob,
)

#: Key types a witness may use, as named in OpenSSH public key lines.
KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    SK_ED25519,
    SK_ECDSA,
)


PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = (
    ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey | SecurityKey
)
#: RSA keys below this size are refused (OpenSSH itself still accepts 1024 bits).
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384  # OpenSSH's SSHBUF_MAX_BIGNUM limit

_PRIVATE_CLASSES = (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)
_PUBLIC_CLASSES = (
    ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey, rsa.RSAPublicKey, SecurityKey
)
_MAX_KEY_FILE = 64 * 1024
_COPY_HINT = N_("copy the whole single line of the .pub file again, unchanged")
_NEW_KEY_HINT = N_(
    "make a new key with `ssh-keygen -t ed25519 -f PATH` and register its public key")


def load_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKey:
    """Read an OpenSSH (or PEM) private key file, refusing one that others can read.

    Raises:
        KeyFileError: the file is missing, unreadable, readable by group or others, not a
            private key, encrypted and no (or a wrong) passphrase was given, or of a key type
            or size the gateway does not accept.
    """
    data = _read_private_file(path)
    if b"-----BEGIN" not in data:
        raise KeyFileError(
            N_("{path} is not a private key file (no OpenSSH or PEM private "
               "key inside)").format(path=path),
            hint=N_("give the private key file (e.g. ~/.ssh/id_ed25519), not the "
                    ".pub file"),
        )
    try:
        key = _parse_private(data, passphrase)
    except TypeError:
        # cryptography raises TypeError for "encrypted, but no passphrase given" and for
        # "passphrase given, but not encrypted"; the second is harmless.
        if passphrase is None:
            raise KeyFileError(
                N_("the private key {path} is protected by a passphrase").format(
                    path=path),
                hint=N_("give the key's passphrase, or sign with `ssh-keygen -Y "
                        "sign` instead"),
            ) from None
        try:
            key = _parse_private(data, None)
        except (TypeError, ValueError, UnsupportedAlgorithm, NotImplementedError):
            raise KeyFileError(N_("{path} is damaged").format(path=path),
                               hint=_NEW_KEY_HINT) from None
    except (ValueError, UnsupportedAlgorithm, NotImplementedError):
        if passphrase is not None:
            raise KeyFileError(
                N_("the private key {path} could not be decrypted or read").format(
                    path=path),
                hint=N_("check the passphrase; if it is right, the file is damaged"),
            ) from None
        raise KeyFileError(
            N_("{path} is damaged or holds a key type the gateway cannot "
               "read").format(path=path),
            hint=_NEW_KEY_HINT,
        ) from None
    _check_key_kind(key, str(path))
    if not isinstance(key, _PRIVATE_CLASSES):  # pragma: no cover - _check_key_kind refused it
        raise KeyFileError(N_("{path} holds a public key, not a private key").format(
                               path=path), hint=_NEW_KEY_HINT)
    return key


def public_key_line(key: PublicKey | PrivateKey) -> str:
    """The OpenSSH public key line of `key`: "TYPE BASE64", without a comment.

    Raises:
        KeyFileError: the key is of a type or size the gateway does not accept.
    """
    public = _public(key)
    if isinstance(public, SecurityKey):
        return public.key_type + " " + base64.b64encode(security_key_blob(public)).decode()
    return public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode("ascii")


def public_key_blob(key: PublicKey | PrivateKey) -> bytes:
    """The SSH wire encoding of the public key (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709 §4).

    Raises:
        KeyFileError: the key is of a type or size the gateway does not accept.
    """
    return base64.b64decode(public_key_line(key).split(" ")[1])


def parse_public_key(line: str) -> PublicKey:
    """Parse an OpenSSH public key line "TYPE BASE64 [COMMENT]".

    Raises:
        KeyFileError: the line is not a public key of an accepted type and size.
    """
    parts = line.strip().split(maxsplit=2)
    if len(parts) < 2:
        raise KeyFileError(
            N_("this is not an SSH public key line (expected 'TYPE BASE64 "
               "[COMMENT]')"),
            hint=N_("copy the whole single line of the .pub file, e.g. "
                    "~/.ssh/id_ed25519.pub"),
        )
    key_type, b64 = parts[0], parts[1]
    if key_type not in KEY_TYPES:
        _unaccepted_type(key_type)
    try:
        blob = base64.b64decode(b64.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise KeyFileError(
            N_("the public key line is damaged (its second field is not "
               "valid base64)"),
            hint=_COPY_HINT,
        ) from None
    return public_key_from_blob(blob, expected_type=key_type)


def public_key_from_blob(blob: bytes, expected_type: str | None = None) -> PublicKey:
    """Decode the SSH wire encoding of a public key, accepting only its canonical form.

    Raises:
        KeyFileError: the blob is malformed, not canonical, or of a type or size not accepted.
    """
    key_type = _blob_type(blob)
    if key_type not in KEY_TYPES:
        _unaccepted_type(key_type)
    if expected_type is not None and key_type != expected_type:
        raise KeyFileError(
            N_("the public key line says {expected_type} but holds a "
               "{key_type} key").format(
                expected_type=expected_type, key_type=key_type),
            hint=_COPY_HINT,
        )
    key: object
    if key_type in (SK_ED25519, SK_ECDSA):
        key = security_key_from_blob(blob, key_type, _COPY_HINT)
    else:
        line = key_type.encode("ascii") + b" " + base64.b64encode(blob)
        try:
            key = serialization.load_ssh_public_key(line)
        except Exception:  # untrusted bytes: ValueError, also NotImplementedError, TypeError...
            raise KeyFileError(
                N_("the {key_type} public key is malformed").format(
                    key_type=key_type), hint=_COPY_HINT
            ) from None
    _check_key_kind(key, "the public key")
    if not isinstance(key, _PUBLIC_CLASSES):  # pragma: no cover - _check_key_kind refused it
        raise KeyFileError(N_("the public key is of a type not accepted"), hint=_NEW_KEY_HINT)
    # Refuse non-canonical encodings (e.g. padded mpints), so one key has exactly one line.
    if public_key_blob(key) != blob:
        raise KeyFileError(
            N_("the {key_type} public key is not in canonical form").format(
                key_type=key_type),
            hint=_COPY_HINT,
        )
    return key


def fingerprint(key: PublicKey | PrivateKey | str) -> str:
    """The key's fingerprint as `ssh-keygen -lf` prints it: "SHA256:" + unpadded base64.

    Raises:
        KeyFileError: a line was given that is not a public key of an accepted type.
    """
    public = parse_public_key(key) if isinstance(key, str) else key
    digest = hashlib.sha256(public_key_blob(public)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def generate_ed25519(path: Path, comment: str) -> str:
    """Write a new unencrypted ed25519 key to `path` (mode 0600) and `path.pub` (mode 0644).

    Returns the public key line (without the comment). Never overwrites a file.

    Raises:
        KeyFileError: either file already exists, the comment is not one printable line, or
            the files cannot be written.
    """
    if not comment.isprintable():
        raise KeyFileError(
            N_("the key comment must be one line of printable characters"),
            hint=N_("use a comment like 'name@office'"),
        )
    pub_path = path.with_name(path.name + ".pub")
    for existing in (path, pub_path):
        if os.path.lexists(existing):
            raise KeyFileError(
                N_("{existing} already exists; refusing to overwrite a key file").format(
                    existing=existing),
                hint=N_("choose another file name, or move the old key away yourself"),
            )
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    line = public_key_line(key)
    pub_text = f"{line} {comment}\n" if comment else f"{line}\n"
    _write_new(path, private_pem, 0o600)
    try:
        _write_new(pub_path, pub_text.encode("utf-8"), 0o644)
    except KeyFileError:
        path.unlink(missing_ok=True)
        raise
    return line


def _read_private_file(path: Path) -> bytes:
    """Open the file, check its type and mode on the open descriptor (no race), read it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise KeyFileError(N_("there is no key file at {path}").format(
                               path=path), hint=_NEW_KEY_HINT) from None
    except OSError as err:
        raise KeyFileError(
            N_("cannot open the key file {path}: {strerror}").format(
                path=path, strerror=err.strerror),
            hint=N_("check the path and that you may read the file"),
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(N_("{path} is not a regular file").format(
                                   path=path), hint=N_("give the private key file"))
        if info.st_mode & 0o077:
            # Like OpenSSH's "UNPROTECTED PRIVATE KEY FILE": any group/other access is refused.
            raise KeyFileError(
                N_("the private key {path} is accessible by other users (mode "
                   "{S_IMODE:04o}); it is refused").format(
                    path=path, S_IMODE=stat.S_IMODE(info.st_mode)),
                hint=N_("run `chmod 600 {path}`, and if others may have copied it, "
                        "make a new key").format(path=path),
            )
        if info.st_size > _MAX_KEY_FILE:
            raise KeyFileError(N_("{path} is too large to be a key file").format(
                                   path=path), hint=_NEW_KEY_HINT)
        chunks: list[bytes] = []
        while chunk := os.read(fd, _MAX_KEY_FILE + 1):
            chunks.append(chunk)
            if sum(map(len, chunks)) > _MAX_KEY_FILE:
                raise KeyFileError(N_("{path} is too large to be a key file").format(
                                       path=path), hint=_NEW_KEY_HINT)
        return b"".join(chunks)
    except OSError as err:
        raise KeyFileError(
            N_("cannot read the key file {path}: {strerror}").format(
                path=path, strerror=err.strerror), hint=N_("check the file")
        ) from None
    finally:
        os.close(fd)


def _parse_private(data: bytes, passphrase: bytes | None) -> object:
    """Parse OpenSSH or PEM private key bytes; cryptography's own exceptions pass through."""
    if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
        return serialization.load_ssh_private_key(data, passphrase)
    return serialization.load_pem_private_key(data, passphrase)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` exclusively with `mode` from the first instant, write and sync it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise KeyFileError(
            N_("{path} already exists; refusing to overwrite a key file").format(
                path=path),
            hint=N_("choose another file name, or move the old key away yourself"),
        ) from None
    except OSError as err:
        raise KeyFileError(
            N_("cannot create {path}: {strerror}").format(
                path=path, strerror=err.strerror),
            hint=N_("check that the folder exists and is yours"),
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # exact mode, whatever the umask
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        path.unlink(missing_ok=True)
        raise KeyFileError(
            N_("cannot write {path}: {strerror}").format(
                path=path, strerror=err.strerror), hint=N_("check free space")
        ) from None


def _public(key: PublicKey | PrivateKey) -> PublicKey:
    """The public half of `key`, checked to be an accepted type and size."""
    _check_key_kind(key, "the key")
    if isinstance(key, _PRIVATE_CLASSES):
        return key.public_key()
    return key


def _check_key_kind(key: object, what: str) -> None:
    """Refuse keys other than ed25519, ECDSA on NIST P-256/384/521, RSA of a sane size, and
    security keys (ed25519 or ECDSA P-256 inside)."""
    if isinstance(key, SecurityKey):
        if isinstance(key.key, ed25519.Ed25519PublicKey) or isinstance(key.key.curve, ec.SECP256R1):
            return
        raise KeyFileError(N_("{what} is a security key on a curve OpenSSH does not use").format(
                               what=what),
                           hint=_NEW_KEY_HINT)
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1 | ec.SECP521R1):
            return
        raise KeyFileError(
            N_("{what} uses the curve {name}, which SSH does not use").format(
                what=what, name=key.curve.name), hint=_NEW_KEY_HINT
        )
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            return
        raise KeyFileError(
            N_("{what} is an RSA key of {key_size} bits; accepted are "
               "{MIN_RSA_BITS} to {MAX_RSA_BITS} bits").format(
                what=what, key_size=key.key_size, MIN_RSA_BITS=MIN_RSA_BITS,
                MAX_RSA_BITS=MAX_RSA_BITS),
            hint=_NEW_KEY_HINT,
        )
    raise KeyFileError(
        N_("{what} is of a type the gateway does not accept (accepted: "
           "{value})").format(what=what, value=', '.join(KEY_TYPES)),
        hint=_NEW_KEY_HINT,
    )


def _blob_type(blob: bytes) -> str:
    """The key type name at the start of a public key blob: string(type) (RFC 4253 §6.6)."""
    if len(blob) < 4:
        raise KeyFileError(N_("the public key is truncated (no key type)"), hint=_COPY_HINT)
    (length,) = struct.unpack(">I", blob[:4])
    raw = blob[4 : 4 + length]
    if not 0 < length <= 64 or len(raw) != length or not all(0x21 <= c <= 0x7E for c in raw):
        raise KeyFileError(N_("the public key is malformed (unreadable key type)"), hint=_COPY_HINT)
    return raw.decode("ascii")


def _unaccepted_type(key_type: str) -> NoReturn:
    """Refuse a key type by name; the name is untrusted, so it is shown escaped and short."""
    shown = repr(key_type if len(key_type) <= 60 else key_type[:60] + "…")
    raise KeyFileError(
        N_("SSH key type {shown} is not accepted (accepted: {value})").format(
            shown=shown, value=', '.join(KEY_TYPES)),
        hint=_NEW_KEY_HINT,
    )
