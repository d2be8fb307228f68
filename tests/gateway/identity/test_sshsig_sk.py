"""Security-key (FIDO2) signatures: OpenSSH's own test vectors, hostile edits, and the flags.

The vectors in `vectors/` were made by OpenSSH (`ssh-keygen -Y sign` with its software token);
no token exists here. To show that a signature without a touch is refused for that reason and no
other, synthetic sk signatures are also made with a software ed25519 key over exactly the bytes
a token signs (PROTOCOL.u2f), so they are cryptographically valid whatever their flags.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.errors import KeyFileError, SignatureError
from gateway.identity.securitykeys import SK_ECDSA, SK_ED25519, SecurityKey
from gateway.identity.sshkeys import fingerprint, parse_public_key, public_key_line
from gateway.identity.sshsig import USER_PRESENCE, USER_VERIFICATION, verify
from policies.approvals import key_proof_refusal
from policies.terms import WitnessKeys
from tests.policies.bundled import agreement

VECTORS = Path(__file__).parent / "vectors"
MESSAGE = (VECTORS / "signed-data").read_bytes()
NS = (VECTORS / "namespace").read_text()
SK_VECTORS = {"ed25519_sk": SK_ED25519, "ecdsa_sk": SK_ECDSA}
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
needs_keygen = pytest.mark.skipif(not Path(SSH_KEYGEN).exists(), reason="needs ssh-keygen")
PRESENCE_REFUSED = "does not show user presence"
MISMATCH = "does not match this message"


def vector(name: str) -> tuple[str, str]:
    """(public key line without comment, armored signature) of a vector."""
    pub = " ".join((VECTORS / f"{name}.pub").read_text().split()[:2])
    return pub, (VECTORS / f"{name}.sig").read_text()


def unarmor(armored: str) -> bytes:
    return base64.b64decode("".join(armored.strip().splitlines()[1:-1]))


def armor(blob: bytes) -> str:
    body = base64.b64encode(blob).decode()
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    framed = ["-----BEGIN SSH SIGNATURE-----", *lines, "-----END SSH SIGNATURE-----"]
    return "\n".join(framed) + "\n"


def string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def with_flags(armored: str, flags: int) -> str:
    """The same signature re-encoded with other flags: flags and counter are the blob's last 5
    bytes (the signature field ends the blob, PROTOCOL.u2f puts them at its end)."""
    blob = unarmor(armored)
    return armor(blob[:-5] + bytes([flags]) + blob[-4:])


def synthetic(flags: int, counter: int = 7, message: bytes = MESSAGE) -> tuple[str, str]:
    """(public key line, armored signature) of a software 'security key' signing like a token."""
    inner = ed25519.Ed25519PrivateKey.generate()
    raw_pub = inner.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    application = b"ssh:"
    key_blob = string(SK_ED25519.encode()) + string(raw_pub) + string(application)
    digest = hashlib.sha512(message).digest()
    data = b"SSHSIG" + string(NS.encode()) + string(b"") + string(b"sha512") + string(digest)
    to_sign = (
        hashlib.sha256(application).digest()
        + bytes([flags])
        + struct.pack(">I", counter)
        + hashlib.sha256(data).digest()
    )
    sig_field = (
        string(SK_ED25519.encode())
        + string(inner.sign(to_sign))
        + bytes([flags])
        + struct.pack(">I", counter)
    )
    blob = (
        b"SSHSIG" + struct.pack(">I", 1) + string(key_blob) + string(NS.encode()) + string(b"")
        + string(b"sha512") + string(sig_field)
    )
    return f"{SK_ED25519} {base64.b64encode(key_blob).decode()}", armor(blob)


def keygen_verify(pub: str, armored: str, tmp: Path) -> subprocess.CompletedProcess[bytes]:
    allowed = tmp / "allowed_signers"
    allowed.write_text(f'witness@example namespaces="{NS}" {pub}\n')
    sig = tmp / "data.sig"
    sig.write_text(armored)
    return subprocess.run(
        [SSH_KEYGEN, "-Y", "verify", "-f", str(allowed), "-I", "witness@example", "-n", NS,
         "-s", str(sig)],
        input=MESSAGE, capture_output=True, timeout=60, check=False,
    )


# --- the OpenSSH vectors --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "key_type"), SK_VECTORS.items())
def test_openssh_vector_verifies(name: str, key_type: str) -> None:
    pub, sig = vector(name)
    signed = verify(MESSAGE, sig, NS)
    assert signed.public_key == pub and pub.startswith(key_type + " ")
    assert signed.fingerprint == fingerprint(pub)
    assert signed.sk_flags == USER_PRESENCE  # sk-dummy: touched, no PIN
    assert signed.sk_counter == 0x12345678
    assert not signed.user_verified


@needs_keygen
@pytest.mark.parametrize("name", SK_VECTORS)
def test_fingerprint_and_verdict_agree_with_ssh_keygen(name: str, tmp_path: Path) -> None:
    pub, sig = vector(name)
    listed = subprocess.run([SSH_KEYGEN, "-lf", str(VECTORS / f"{name}.pub")],
                            capture_output=True, timeout=60, check=True)
    assert fingerprint(pub) in listed.stdout.decode()
    done = keygen_verify(pub, sig, tmp_path)
    assert done.returncode == 0 and b"Good" in done.stdout


@pytest.mark.parametrize("name", SK_VECTORS)
def test_public_key_line_round_trips(name: str) -> None:
    pub, _sig = vector(name)
    key = parse_public_key(pub)
    assert isinstance(key, SecurityKey) and key.application == b"ssh:"
    assert public_key_line(key) == pub


@pytest.mark.parametrize("name", SK_VECTORS)
def test_every_byte_flip_of_a_vector_is_refused(name: str) -> None:
    blob = unarmor(vector(name)[1])
    for i in range(len(blob)):
        flipped = blob[:i] + bytes([blob[i] ^ 0x01]) + blob[i + 1 :]
        with pytest.raises(SignatureError):
            verify(MESSAGE, armor(flipped), NS)


@pytest.mark.parametrize("name", SK_VECTORS)
def test_a_changed_message_or_counter_is_a_mismatch(name: str) -> None:
    sig = vector(name)[1]
    with pytest.raises(SignatureError, match=MISMATCH):
        verify(MESSAGE + b"!", sig, NS)
    blob = unarmor(sig)
    with pytest.raises(SignatureError, match=MISMATCH):  # flags intact: crypto refuses it
        verify(MESSAGE, armor(blob[:-1] + bytes([blob[-1] ^ 1])), NS)


@pytest.mark.parametrize("name", SK_VECTORS)
@pytest.mark.parametrize("flags", [0x00, USER_VERIFICATION])
def test_user_presence_cleared_is_refused_by_the_flag_check(name: str, flags: int) -> None:
    with pytest.raises(SignatureError, match=PRESENCE_REFUSED) as caught:
        verify(MESSAGE, with_flags(vector(name)[1], flags), NS)
    assert MISMATCH not in str(caught.value)


@needs_keygen
@pytest.mark.parametrize("name", SK_VECTORS)
def test_ssh_keygen_refuses_the_cleared_flag_too(name: str, tmp_path: Path) -> None:
    pub, sig = vector(name)
    assert keygen_verify(pub, with_flags(sig, 0), tmp_path).returncode != 0


def test_webauthn_signatures_are_refused_by_name() -> None:
    with pytest.raises(SignatureError, match="webauthn-sk-ecdsa"):
        verify(MESSAGE, vector("ecdsa_sk_webauthn")[1], NS)


# --- synthetic signatures: valid cryptography, chosen flags -------------------------------------


def test_a_valid_signature_without_a_touch_is_refused_for_the_flag() -> None:
    _pub, touched = synthetic(USER_PRESENCE)
    assert verify(MESSAGE, touched, NS).sk_flags == USER_PRESENCE  # the construction is sound
    _pub, untouched = synthetic(0x00)
    with pytest.raises(SignatureError, match=PRESENCE_REFUSED):
        verify(MESSAGE, untouched, NS)


def test_user_verification_is_reported() -> None:
    pub, sig = synthetic(USER_PRESENCE | USER_VERIFICATION, counter=42)
    signed = verify(MESSAGE, sig, NS)
    assert signed.public_key == pub and signed.user_verified and signed.sk_counter == 42


@needs_keygen
def test_ssh_keygen_accepts_our_synthetic_encoding(tmp_path: Path) -> None:
    # ssh-keygen checks the cryptography of both; it does not (OpenSSH 9.2) refuse a signature
    # whose presence flag is clear, so that refusal is ours alone and made before the crypto.
    pub, good = synthetic(USER_PRESENCE | USER_VERIFICATION)
    assert keygen_verify(pub, good, tmp_path).returncode == 0
    pub, untouched = synthetic(USER_VERIFICATION)
    assert keygen_verify(pub, untouched, tmp_path).returncode == 0
    with pytest.raises(SignatureError, match=PRESENCE_REFUSED):
        verify(MESSAGE, untouched, NS)


def test_a_plain_key_signature_has_no_flags() -> None:
    _pub, sig = synthetic(USER_PRESENCE)
    blob = unarmor(sig)
    # The same bytes claiming to be a plain ssh-ed25519 signature are refused (type mismatch).
    sk_type = string(SK_ED25519.encode())
    with pytest.raises(SignatureError):
        verify(MESSAGE, armor(blob.replace(sk_type, string(b"ssh-ed25519"), 2)), NS)


@pytest.mark.parametrize(
    "blob",
    [
        string(SK_ED25519.encode()) + string(b"\x01" * 31) + string(b"ssh:"),
        string(SK_ED25519.encode()) + string(b"\x01" * 32),
        string(SK_ED25519.encode()) + string(b"\x01" * 32) + string(b""),
        string(SK_ECDSA.encode()) + string(b"nistp384") + string(b"\x04" * 65) + string(b"ssh:"),
        string(SK_ECDSA.encode()) + string(b"nistp256") + string(b"\x04" * 65) + string(b"ssh:"),
        string(SK_ED25519.encode()) + string(b"\x01" * 32) + string(b"ssh:") + b"\x00",
    ],
    ids=["short-key", "no-application", "empty-application", "wrong-curve", "not-a-point",
         "trailing-byte"],
)
def test_malformed_security_key_blobs_are_refused(blob: bytes) -> None:
    key_type = SK_ED25519 if SK_ED25519.encode() in blob else SK_ECDSA
    with pytest.raises(KeyFileError):
        parse_public_key(f"{key_type} {base64.b64encode(blob).decode()}")


@pytest.mark.parametrize("name", SK_VECTORS)
def test_a_vector_counts_unless_the_agreement_requires_user_verification(name: str) -> None:
    signed = verify(MESSAGE, vector(name)[1], NS)
    plain = agreement("isa-nhi-status-loss")
    strict = dataclasses.replace(plain, witness_keys=WitnessKeys(require_user_verification=True))
    assert key_proof_refusal(plain, signed.sk_flags) is None
    refused = key_proof_refusal(strict, signed.sk_flags)
    assert refused is not None and refused.rule == "approval.user-verification"
