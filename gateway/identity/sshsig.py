"""SSH signatures in OpenSSH's SSHSIG format (`ssh-keygen -Y sign` / `-Y verify`).

Owns the armored format of PROTOCOL.sshsig on `cryptography` alone, including signatures of FIDO2
security keys (PROTOCOL.u2f). `verify` proves only that the key inside a signature signed this
message under this namespace (and, for a security key, that it was touched); deciding whose key it
is, and whether user verification was needed, belongs to the caller. It must never raise anything
but `SignatureError` on hostile input.
"""

from __future__ import annotations

import binascii
import hashlib
import struct
from dataclasses import dataclass
from typing import NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from gateway.errors import KeyFileError, SignatureError
from gateway.i18n import N_
from gateway.identity.securitykeys import SK_ECDSA, SK_ED25519, SecurityKey
from gateway.identity.sshkeys import (
    PrivateKey,
    fingerprint,
    public_key_blob,
    public_key_from_blob,
    public_key_line,
)

#: Hash algorithms accepted for the message digest (PROTOCOL.sshsig §"Signed Data").
HASH_ALGORITHMS = ("sha256", "sha512")

_MAGIC = b"SSHSIG"
_VERSION = 1
_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_END = "-----END SSH SIGNATURE-----"
_LINE = 70  # ssh-keygen wraps the base64 body at 70 columns
_MAX_ARMOR = 64 * 1024
_RESEND = N_("send the complete .sig file that `ssh-keygen -Y sign` wrote, unchanged")
_RSA_HASHES: dict[str, hashes.HashAlgorithm] = {
    "rsa-sha2-256": hashes.SHA256(),
    "rsa-sha2-512": hashes.SHA512(),
}
_EC_HASHES: dict[str, hashes.HashAlgorithm] = {  # RFC 5656 §6.2.1
    "nistp256": hashes.SHA256(),
    "nistp384": hashes.SHA384(),
    "nistp521": hashes.SHA512(),
}
#: Flags a FIDO2 authenticator sets in a signature (PROTOCOL.u2f, WebAuthn §6.1 "flags").
USER_PRESENCE = 0x01  # the token was touched
USER_VERIFICATION = 0x04  # the person proved who they are to the token (PIN or biometric)
_SK_TYPES = (SK_ED25519.encode(), SK_ECDSA.encode())


@dataclass(frozen=True)
class Signed:
    """What a good signature proves: this key signed the message with this hash algorithm."""

    public_key: str  # OpenSSH public key line of the key inside the signature, no comment
    fingerprint: str  # "SHA256:..." as `ssh-keygen -lf` prints it
    hash_algorithm: str  # "sha256" or "sha512"
    # A security key's authenticator flags and signature counter (PROTOCOL.u2f); None for
    # keys kept in files, which can prove neither presence nor verification.
    sk_flags: int | None = None
    sk_counter: int | None = None

    @property
    def user_verified(self) -> bool:
        """Whether a security key reported user verification (PIN or biometric) for this one."""
        return self.sk_flags is not None and bool(self.sk_flags & USER_VERIFICATION)


def sign(message: bytes, key: PrivateKey, namespace: str) -> str:
    """Sign `message` under `namespace`; returns the armored text `ssh-keygen -Y sign` writes.

    Uses sha512 for the message and rsa-sha2-512 for RSA keys.

    Raises:
        SignatureError: the namespace is empty.
        KeyFileError: the key is of a type or size the gateway does not accept.
    """
    ns = _namespace_bytes(namespace)
    blob = public_key_blob(key)  # also refuses unaccepted key types
    data = _signed_data(ns, b"", b"sha512", hashlib.sha512(message).digest())
    if isinstance(key, ed25519.Ed25519PrivateKey):  # RFC 8709 §6
        sig_type, raw = "ssh-ed25519", key.sign(data)
    elif isinstance(key, ec.EllipticCurvePrivateKey):  # RFC 5656 §3.1.2
        curve = _ec_curve_name(key.curve)
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(_EC_HASHES[curve])))
        sig_type, raw = f"ecdsa-sha2-{curve}", _mpint(r) + _mpint(s)
    else:  # RFC 8332 §3: RSASSA-PKCS1-v1_5 with SHA-512
        sig_type, raw = "rsa-sha2-512", key.sign(data, padding.PKCS1v15(), hashes.SHA512())
    signature = _string(sig_type.encode("ascii")) + _string(raw)
    # PROTOCOL.sshsig "Blob format": MAGIC, version, publickey, namespace, reserved, hash, sig.
    out = (
        _MAGIC
        + struct.pack(">I", _VERSION)
        + _string(blob)
        + _string(ns)
        + _string(b"")
        + _string(b"sha512")
        + _string(signature)
    )
    # PROTOCOL.sshsig "Armored format": base64 between BEGIN/END lines, wrapped like ssh-keygen.
    body = binascii.b2a_base64(out, newline=False).decode("ascii")
    lines = [body[i : i + _LINE] for i in range(0, len(body), _LINE)]
    return "\n".join([_BEGIN, *lines, _END]) + "\n"


def verify(message: bytes, armored: str | bytes, namespace: str) -> Signed:
    """Check that `armored` is a good SSHSIG signature over `message` under `namespace`.

    Checks, in order: armor and structure, version, namespace, hash algorithm, key and
    signature algorithm, for a security key its user-presence flag (like `ssh-keygen -Y
    verify` without `no-touch-required`), then the signature itself. Says nothing about whose
    key it is, nor whether user verification was required (see `Signed.user_verified`).

    Raises:
        SignatureError: for any input that is not a good signature; the message says which check
            failed and the hint what the signer should do.
    """
    expected_ns = _namespace_bytes(namespace)
    reader = _Reader(_dearmor(armored))
    if reader.take(len(_MAGIC), "the SSHSIG preamble") != _MAGIC:
        raise SignatureError(
            N_("this is not an SSH signature: the data inside the armor "
               "does not start with SSHSIG"),
            hint=_RESEND,
        )
    version = reader.uint32("the version")
    if version != _VERSION:
        raise SignatureError(
            N_("SSH signature version {version} is not supported (only "
               "version {VERSION})").format(version=version, VERSION=_VERSION),
            hint=N_("sign again with OpenSSH's `ssh-keygen -Y sign`"),
        )
    key_blob = reader.string("the public key")
    found_ns = reader.string("the namespace")
    reserved = reader.string("the reserved field")  # PROTOCOL.sshsig: ignore its meaning
    hash_name = reader.string("the hash algorithm")
    sig_reader = _Reader(reader.string("the signature"), "the signature")
    reader.end("the signature blob")
    sig_type = sig_reader.string("the signature algorithm")
    raw = sig_reader.string("the signature value")
    if sig_type.startswith(b"webauthn-"):
        raise SignatureError(
            N_("the signature algorithm {show} (a security key used through "
               "a web browser) is not accepted").format(show=_show(sig_type)),
            hint=N_("sign with `ssh-keygen -Y sign` and the security key plugged "
                    "into this computer"),
        )
    sk: tuple[int, int] | None = None
    if sig_type in _SK_TYPES:  # PROTOCOL.u2f: the token's flags and counter follow
        flags = sig_reader.take(1, "the security key flags")[0]
        sk = (flags, sig_reader.uint32("the security key counter"))
    sig_reader.end("the signature field")

    if found_ns != expected_ns:
        found = _show(found_ns)
        raise SignatureError(
            N_("the signature was made for the namespace {found}, but "
               "namespace {namespace} is expected here").format(
                found=found, namespace=repr(namespace)),
            hint=N_("sign again with `ssh-keygen -Y sign -n {namespace} -f KEY "
                    "FILE`").format(namespace=namespace),
        )
    if hash_name.decode("ascii", "replace") not in HASH_ALGORITHMS:
        raise SignatureError(
            N_("the signature uses the hash algorithm {show}, which is not "
               "accepted (accepted: {value})").format(
                show=_show(hash_name), value=', '.join(HASH_ALGORITHMS)),
            hint=N_("sign again with a current OpenSSH `ssh-keygen -Y sign`"),
        )
    try:
        key = public_key_from_blob(key_blob)
    except KeyFileError as err:
        raise SignatureError(
            N_("the public key inside the signature is unusable: {err}").format(
                err=err), hint=err.hint
        ) from None
    digest = hashlib.new(hash_name.decode("ascii"), message).digest()
    data = _signed_data(found_ns, reserved, hash_name, digest)
    if isinstance(key, SecurityKey):
        _check_security_key(key, sig_type, raw, sk, data)
    else:
        _check_signature(key, sig_type, raw, data)
    return Signed(
        public_key=public_key_line(key),
        fingerprint=fingerprint(key),
        hash_algorithm=hash_name.decode("ascii"),
        sk_flags=sk[0] if sk else None,
        sk_counter=sk[1] if sk else None,
    )


class _Reader:
    """Reads SSH wire types (RFC 4253 §5) from untrusted bytes; every fault is a SignatureError."""

    def __init__(self, data: bytes, where: str = "the signature blob") -> None:
        self._data = data
        self._pos = 0
        self._where = where

    def take(self, count: int, part: str) -> bytes:
        """The next `count` bytes, or SignatureError naming `part` if there are fewer."""
        if count > len(self._data) - self._pos:
            raise SignatureError(
                N_("the SSH signature is truncated or malformed: {part} is cut "
                   "short (inside {where})").format(
                    part=part, where=self._where),
                hint=_RESEND,
            )
        chunk = self._data[self._pos : self._pos + count]
        self._pos += count
        return chunk

    def uint32(self, part: str) -> int:
        """A big-endian uint32."""
        value: int = struct.unpack(">I", self.take(4, part))[0]
        return value

    def string(self, part: str) -> bytes:
        """A uint32 length followed by that many bytes."""
        return self.take(self.uint32(part), part)

    def end(self, part: str) -> None:
        """Refuse bytes left over after the last field."""
        if self._pos != len(self._data):
            raise SignatureError(
                N_("the SSH signature is malformed: {value} unexpected bytes "
                   "follow {part}").format(
                    value=len(self._data) - self._pos, part=part),
                hint=_RESEND,
            )


def _dearmor(armored: str | bytes) -> bytes:
    """The binary blob inside "-----BEGIN SSH SIGNATURE-----" armor (PROTOCOL.sshsig §Armored)."""
    not_sig = N_("this is not an SSH signature")
    hint = _RESEND
    if isinstance(armored, bytes):
        try:
            armored = armored.decode("ascii")
        except UnicodeDecodeError:
            raise SignatureError(N_("{not_sig}: it contains non-ASCII bytes").format(
                                     not_sig=not_sig), hint=hint) from None
    if not armored.strip():
        raise SignatureError(N_("{not_sig}: it is empty").format(
                                 not_sig=not_sig), hint=hint)
    if len(armored) > _MAX_ARMOR:
        raise SignatureError(N_("{not_sig}: it is far too large for one").format(
                                 not_sig=not_sig), hint=hint)
    if not armored.isascii():
        raise SignatureError(N_("{not_sig}: it contains non-ASCII characters").format(
                                 not_sig=not_sig), hint=hint)
    lines = [line.strip() for line in armored.strip().splitlines()]
    if lines[0] != _BEGIN:
        raise SignatureError(N_("{not_sig}: it does not start with {BEGIN}").format(
                                 not_sig=not_sig, BEGIN=_BEGIN), hint=hint)
    if _END not in lines:
        raise SignatureError(N_("the SSH signature is truncated: {END} is missing").format(
                                 END=_END), hint=hint)
    if lines.index(_END) != len(lines) - 1:
        raise SignatureError(N_("the SSH signature has extra text after {END}").format(
                                 END=_END), hint=hint)
    body = "".join(lines[1:-1])
    try:
        return binascii.a2b_base64(body, strict_mode=True)
    except binascii.Error:
        raise SignatureError(
            N_("the SSH signature is damaged: the text between the BEGIN "
               "and END lines is not valid base64"),
            hint=hint,
        ) from None


def _check_security_key(
    key: SecurityKey, sig_type: bytes, raw: bytes, sk: tuple[int, int] | None, data: bytes
) -> None:
    """Check a FIDO2 signature (PROTOCOL.u2f "SSH U2F signatures"): its type fits the key, the
    token was touched, and `raw` signs sha256(application) || flags || counter || sha256(data).

    The presence flag is checked before the cryptography on purpose: a signature made without
    a touch is refused as such, whatever else is wrong with it.
    """
    if sig_type != key.key_type.encode():
        _wrong_algorithm(sig_type, key.key_type)
    assert sk is not None  # read for every sk signature type above
    flags, counter = sk
    if not flags & USER_PRESENCE:
        raise SignatureError(
            N_("the security key signature does not show user presence "
               "(flag 0x01 is clear): the key was not touched when it "
               "signed, so it approves nothing"),
            hint=N_("sign again with `ssh-keygen -Y sign` and touch the security "
                    "key when it blinks (do not make the key with -O "
                    "no-touch-required)"),
        )
    signed = (
        hashlib.sha256(key.application).digest()
        + bytes([flags])
        + struct.pack(">I", counter)
        + hashlib.sha256(data).digest()
    )
    # The inner key signs like its plain kind: ed25519, or ECDSA P-256 with SHA-256.
    plain = b"ssh-ed25519" if sig_type == SK_ED25519.encode() else b"ecdsa-sha2-nistp256"
    _check_signature(key.key, plain, raw, signed)


def _check_signature(
    key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    sig_type: bytes,
    raw: bytes,
    data: bytes,
) -> None:
    """Verify `raw` over `data`, after checking `sig_type` fits the key (RFC 8709, 5656, 8332)."""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):  # RFC 8709 §6
            if sig_type != b"ssh-ed25519":
                _wrong_algorithm(sig_type, "ssh-ed25519")
            key.verify(raw, data)
        elif isinstance(key, ec.EllipticCurvePublicKey):  # RFC 5656 §3.1.2
            curve = _ec_curve_name(key.curve)
            if sig_type != f"ecdsa-sha2-{curve}".encode():
                _wrong_algorithm(sig_type, f"ecdsa-sha2-{curve}")
            inner = _Reader(raw, "the ECDSA signature value")
            r, s = _read_mpint(inner, "r"), _read_mpint(inner, "s")
            inner.end("the ECDSA signature value")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(_EC_HASHES[curve]))
        else:  # RFC 8332 §3
            if sig_type == b"ssh-rsa":
                raise SignatureError(
                    N_("the RSA signature uses SHA-1 (ssh-rsa), which is no longer "
                       "accepted"),
                    hint=N_("sign again with a current OpenSSH `ssh-keygen -Y sign` "
                            "(rsa-sha2-512)"),
                )
            hash_alg = _RSA_HASHES.get(sig_type.decode("ascii", "replace"))
            if hash_alg is None:
                _wrong_algorithm(sig_type, "rsa-sha2-512 or rsa-sha2-256")
            modulus_len = (key.key_size + 7) // 8
            if len(raw) > modulus_len:
                _mismatch()
            padded = raw.rjust(modulus_len, b"\0")  # OpenSSH pads short RSA signatures too
            key.verify(padded, data, padding.PKCS1v15(), hash_alg)
    except (InvalidSignature, ValueError):
        _mismatch()


def _mismatch() -> NoReturn:
    """The signature is well formed but was not made by this key over these bytes."""
    raise SignatureError(
        N_("the signature does not match this message: it was made over "
           "other bytes (perhaps another transfer's statement, or an "
           "older version of this one)"),
        hint=N_("have the witness sign exactly this statement again with "
                "`ssh-keygen -Y sign`"),
    )


def _wrong_algorithm(found: bytes, expected: str) -> NoReturn:
    """The signature algorithm does not belong to the key inside the signature."""
    raise SignatureError(
        N_("the signature algorithm {show} does not fit this key "
           "(expected {expected})").format(show=_show(found), expected=expected),
        hint=N_("sign again with a current OpenSSH `ssh-keygen -Y sign`"),
    )


def _read_mpint(reader: _Reader, name: str) -> int:
    """A positive mpint in its one canonical encoding (RFC 4251 §5)."""
    raw = reader.string(f"the ECDSA value {name}")
    if not raw or raw[0] & 0x80 or (raw[0] == 0 and (len(raw) == 1 or not raw[1] & 0x80)):
        raise SignatureError(
            N_("the SSH signature is malformed: the ECDSA value {name} is "
               "not a canonical positive number").format(name=name),
            hint=_RESEND,
        )
    return int.from_bytes(raw, "big")


def _mpint(value: int) -> bytes:
    """string(mpint) of a non-negative integer (RFC 4251 §5)."""
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big") if value else b""
    return _string(raw)


def _string(data: bytes) -> bytes:
    """uint32 length followed by the bytes (RFC 4251 §5 "string")."""
    return struct.pack(">I", len(data)) + data


def _signed_data(namespace: bytes, reserved: bytes, hash_name: bytes, digest: bytes) -> bytes:
    """PROTOCOL.sshsig: MAGIC || string(namespace) || string(reserved) || string(hash) || H(m)."""
    return _MAGIC + _string(namespace) + _string(reserved) + _string(hash_name) + _string(digest)


def _namespace_bytes(namespace: str) -> bytes:
    """The namespace as UTF-8; it must not be empty (ssh-keygen requires one too)."""
    if not namespace or not namespace.isprintable():
        raise SignatureError(
            N_("the signature namespace must be a non-empty printable name"),
            hint=N_("this is a bug in the caller; please report it"),
        )
    return namespace.encode("utf-8")


def _ec_curve_name(curve: ec.EllipticCurve) -> str:
    """The SSH curve name of a NIST curve (RFC 5656 §10.1)."""
    return {"secp256r1": "nistp256", "secp384r1": "nistp384", "secp521r1": "nistp521"}[curve.name]


def _show(raw: bytes) -> str:
    """Untrusted bytes shown safely in a message: decoded, escaped, quoted and short."""
    return repr(raw[:60].decode("utf-8", "replace") + ("…" if len(raw) > 60 else ""))
