"""FIDO2 security keys (PROTOCOL.u2f "SSH U2F public keys"): the public half and its wire form.

The private half never leaves the token, so this module only reads and writes public key blobs
of sk-ssh-ed25519@openssh.com and sk-ecdsa-sha2-nistp256@openssh.com. Their signatures are
checked in `sshsig`; which keys a witness may use is decided in `sshkeys`. It never puts key
bytes into an error message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gateway.errors import KeyFileError
from gateway.i18n import N_

#: FIDO2 security key types (PROTOCOL.u2f): the private half never leaves the token.
SK_ED25519 = "sk-ssh-ed25519@openssh.com"
SK_ECDSA = "sk-ecdsa-sha2-nistp256@openssh.com"
_SK_MAX_APPLICATION = 256


@dataclass(frozen=True)
class SecurityKey:
    """The public half of a FIDO2 security key (PROTOCOL.u2f "SSH U2F public keys"): an ed25519
    or ECDSA P-256 key bound to an application string (usually "ssh:"). Its signatures are
    made by the token over the application's hash, flags and counter (see `sshsig`)."""

    key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
    application: bytes

    @property
    def key_type(self) -> str:
        """The OpenSSH type name: sk-ssh-ed25519@openssh.com or sk-ecdsa-sha2-nistp256@…"""
        return SK_ED25519 if isinstance(self.key, ed25519.Ed25519PublicKey) else SK_ECDSA


def security_key_blob(key: SecurityKey) -> bytes:
    """PROTOCOL.u2f: string(type) [string("nistp256")] string(key) string(application)."""
    if isinstance(key.key, ed25519.Ed25519PublicKey):
        raw = key.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        parts = [SK_ED25519.encode(), raw, key.application]
    else:
        point = key.key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        parts = [SK_ECDSA.encode(), b"nistp256", point, key.application]
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def security_key_from_blob(blob: bytes, key_type: str, hint: str) -> SecurityKey:
    """Decode a security key's public blob; every fault is a KeyFileError. Canonical form is
    checked by the caller, by encoding the result again."""
    malformed = KeyFileError(N_("the {key_type} public key is malformed").format(key_type=key_type),
                             hint=hint)
    fields: list[bytes] = []
    pos = 0
    while pos < len(blob):
        if len(blob) - pos < 4:
            raise malformed
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        if length > len(blob) - pos - 4:
            raise malformed
        fields.append(blob[pos + 4 : pos + 4 + length])
        pos += 4 + length
    try:
        inner: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
        if key_type == SK_ED25519:
            if len(fields) != 3 or len(fields[1]) != 32:
                raise malformed
            inner = ed25519.Ed25519PublicKey.from_public_bytes(fields[1])
        else:
            if len(fields) != 4 or fields[1] != b"nistp256":
                raise malformed
            inner = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), fields[2])
    except (ValueError, NotImplementedError, TypeError):
        raise malformed from None
    application = fields[-1]
    if not 0 < len(application) <= _SK_MAX_APPLICATION:
        raise KeyFileError(
            N_("the {key_type} public key names no (or an overlong) "
               "application").format(key_type=key_type), hint=hint
        )
    return SecurityKey(inner, application)
