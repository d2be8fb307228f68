"""Tests for gateway.identity.sshsig: interoperation with real ssh-keygen, and hostile input."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import KeyFileError, SignatureError
from gateway.identity.sshkeys import fingerprint, load_private_key, public_key_blob, public_key_line
from gateway.identity.sshsig import Signed, sign, verify

SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
pytestmark = pytest.mark.skipif(not Path(SSH_KEYGEN).exists(), reason="needs OpenSSH ssh-keygen")

NS = "tachiai-approval"
MESSAGE = "確認書 transfer 2026-0042: 3 files, sha256 of manifest 9f86d081…\n".encode()
KEY_SPECS = {
    "ed25519": ["-t", "ed25519"],
    "ecdsa-256": ["-t", "ecdsa", "-b", "256"],
    "ecdsa-384": ["-t", "ecdsa", "-b", "384"],
    "ecdsa-521": ["-t", "ecdsa", "-b", "521"],
    "rsa-3072": ["-t", "rsa", "-b", "3072"],
}
DETERMINISTIC = ("ed25519", "rsa-3072")  # ed25519 and PKCS#1 v1.5 signatures are deterministic


def run_keygen(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [SSH_KEYGEN, *args], input=stdin, capture_output=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sigkeys")
    for name, spec in [*KEY_SPECS.items(), ("other-ed25519", ["-t", "ed25519"])]:
        done = run_keygen(*spec, "-q", "-N", "", "-C", f"{name}@example", "-f", str(folder / name))
        assert done.returncode == 0, done.stderr
    return folder


def keygen_sign(keydir: Path, name: str, message: bytes, *extra: str) -> str:
    done = run_keygen("-Y", "sign", "-n", NS, "-f", str(keydir / name), *extra, stdin=message)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode("ascii")


def keygen_verify(keydir: Path, name: str, message: bytes, armored: str, tmp: Path) -> bool:
    pub = " ".join((keydir / f"{name}.pub").read_text().split()[:2])
    allowed = tmp / "allowed_signers"
    allowed.write_text(f'witness@example namespaces="{NS}" {pub}\n')
    sig = tmp / "statement.sig"
    sig.write_text(armored)
    args = ("-Y", "verify", "-f", str(allowed), "-I", "witness@example", "-n", NS, "-s", str(sig))
    done = run_keygen(*args, stdin=message)
    return done.returncode == 0 and b"Good" in done.stdout


def unarmor(armored: str) -> bytes:
    return base64.b64decode("".join(armored.strip().splitlines()[1:-1]))


def armor(blob: bytes) -> str:
    body = base64.b64encode(blob).decode()
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    return (
        "\n".join(["-----BEGIN SSH SIGNATURE-----", *lines, "-----END SSH SIGNATURE-----"]) + "\n"
    )


def string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def fields(blob: bytes) -> list[bytes]:
    """[magic, version, publickey, namespace, reserved, hash_algorithm, signature]."""
    out, pos = [blob[:6], blob[6:10]], 10
    for _ in range(5):
        (n,) = struct.unpack(">I", blob[pos : pos + 4])
        out.append(blob[pos + 4 : pos + 4 + n])
        pos += 4 + n
    assert pos == len(blob)
    return out


def build(parts: list[bytes]) -> str:
    return armor(parts[0] + parts[1] + b"".join(string(p) for p in parts[2:]))


def signed_data(ns: bytes, hash_name: str, message: bytes) -> bytes:
    digest = hashlib.new(hash_name, message).digest()
    return b"SSHSIG" + string(ns) + string(b"") + string(hash_name.encode()) + string(digest)


@pytest.fixture(scope="module")
def ed_key(keydir: Path) -> ed25519.Ed25519PrivateKey:
    key = load_private_key(keydir / "ed25519")
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key


@pytest.fixture(scope="module")
def good(ed_key: ed25519.Ed25519PrivateKey) -> str:
    return sign(MESSAGE, ed_key, NS)


# --- interoperation with ssh-keygen -------------------------------------------------------------


@pytest.mark.parametrize("name", list(KEY_SPECS))
def test_ssh_keygen_signature_verifies(keydir: Path, name: str) -> None:
    armored = keygen_sign(keydir, name, MESSAGE)
    signed = verify(MESSAGE, armored, NS)
    pub_line = " ".join((keydir / f"{name}.pub").read_text().split()[:2])
    printed = run_keygen("-lf", str(keydir / f"{name}.pub")).stdout.decode().split()[1]
    assert signed == Signed(public_key=pub_line, fingerprint=printed, hash_algorithm="sha512")


@pytest.mark.parametrize("name", ["ed25519", "ecdsa-256", "rsa-3072"])
def test_ssh_keygen_sha256_signature_verifies(keydir: Path, name: str) -> None:
    armored = keygen_sign(keydir, name, MESSAGE, "-O", "hashalg=sha256")
    assert verify(MESSAGE, armored, NS).hash_algorithm == "sha256"


@pytest.mark.parametrize("name", list(KEY_SPECS))
def test_our_signature_verifies_with_ssh_keygen(keydir: Path, name: str, tmp_path: Path) -> None:
    key = load_private_key(keydir / name)
    armored = sign(MESSAGE, key, NS)
    assert keygen_verify(keydir, name, MESSAGE, armored, tmp_path)
    assert not keygen_verify(keydir, name, MESSAGE + b"x", armored, tmp_path)
    assert verify(MESSAGE, armored, NS).public_key == public_key_line(key)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_our_signature_is_byte_identical_to_ssh_keygen(keydir: Path, name: str) -> None:
    ours = sign(MESSAGE, load_private_key(keydir / name), NS)
    assert ours == keygen_sign(keydir, name, MESSAGE)
    assert ours.endswith("-----END SSH SIGNATURE-----\n")
    assert all(len(line) <= 70 for line in ours.splitlines())


def test_empty_and_large_messages(ed_key: ed25519.Ed25519PrivateKey) -> None:
    for message in (b"", bytes(range(256)) * 4096):
        assert verify(message, sign(message, ed_key, NS), NS).hash_algorithm == "sha512"


def test_armor_with_crlf_and_bytes_is_accepted(good: str) -> None:
    assert verify(MESSAGE, good.replace("\n", "\r\n"), NS)
    assert verify(MESSAGE, good.encode("ascii"), NS)
    assert verify(MESSAGE, good.rstrip("\n"), NS)


def test_signed_is_frozen(good: str) -> None:
    signed = verify(MESSAGE, good, NS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        signed.fingerprint = "SHA256:x"  # type: ignore[misc]
    assert signed.fingerprint == fingerprint(signed.public_key)


# --- algorithms ---------------------------------------------------------------------------------


def test_rsa_sha2_256_accepted_and_ssh_rsa_sha1_refused(keydir: Path) -> None:
    key = load_private_key(keydir / "rsa-3072")
    assert isinstance(key, rsa.RSAPrivateKey)
    parts = fields(unarmor(sign(MESSAGE, key, NS)))
    data = signed_data(NS.encode(), "sha512", MESSAGE)
    for sig_type, hash_alg in ((b"rsa-sha2-256", hashes.SHA256()), (b"ssh-rsa", hashes.SHA1())):
        raw = key.sign(data, padding.PKCS1v15(), hash_alg)
        parts[6] = string(sig_type) + string(raw)
        if sig_type == b"ssh-rsa":
            with pytest.raises(SignatureError, match="SHA-1"):
                verify(MESSAGE, build(parts), NS)
        else:
            assert verify(MESSAGE, build(parts), NS).hash_algorithm == "sha512"


def test_short_rsa_signature_is_padded_like_openssh() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for counter in range(5000):
        message = MESSAGE + str(counter).encode()
        parts = fields(unarmor(sign(message, key, NS)))
        raw = parts[6][4 + 4 + len(b"rsa-sha2-512") :]
        if raw[0] == 0:
            break
    else:
        pytest.fail("no RSA signature with a leading zero byte found")
    parts[6] = string(b"rsa-sha2-512") + string(raw[1:])
    assert verify(message, build(parts), NS)
    parts[6] = string(b"rsa-sha2-512") + string(b"\0" + raw)
    with pytest.raises(SignatureError):
        verify(message, build(parts), NS)


def test_unsupported_keys_cannot_sign() -> None:
    for key in (
        dsa.generate_private_key(key_size=2048),
        ec.generate_private_key(ec.SECP256K1()),
        rsa.generate_private_key(public_exponent=65537, key_size=1024),
    ):
        with pytest.raises(KeyFileError):
            sign(MESSAGE, key, NS)  # type: ignore[arg-type]


@pytest.mark.parametrize("namespace", ["", "two\nlines"])
def test_bad_namespace_argument(
    ed_key: ed25519.Ed25519PrivateKey, good: str, namespace: str
) -> None:
    with pytest.raises(SignatureError):
        sign(MESSAGE, ed_key, namespace)
    with pytest.raises(SignatureError):
        verify(MESSAGE, good, namespace)


def test_signature_algorithm_must_fit_the_key(keydir: Path) -> None:
    parts = fields(unarmor(sign(MESSAGE, load_private_key(keydir / "ecdsa-256"), NS)))
    inner = parts[6][4 + len(b"ecdsa-sha2-nistp256") :]
    for wrong in (b"ecdsa-sha2-nistp384", b"ssh-ed25519", b"rsa-sha2-512", b"\x1b[31m"):
        parts[6] = string(wrong) + inner
        with pytest.raises(SignatureError, match="does not fit this key") as caught:
            verify(MESSAGE, build(parts), NS)
        assert "\x1b" not in str(caught.value)


# --- hostile input ------------------------------------------------------------------------------


def _refused(message: bytes, armored: str | bytes, namespace: str = NS) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        verify(message, armored, namespace)
    assert str(caught.value) and caught.value.hint
    return caught.value


def test_every_byte_flip_of_an_ed25519_signature_is_refused(good: str) -> None:
    blob = unarmor(good)
    for pos in range(len(blob)):
        for mask in (0x01, 0x80):
            flipped = blob[:pos] + bytes([blob[pos] ^ mask]) + blob[pos + 1 :]
            _refused(MESSAGE, armor(flipped))


@pytest.mark.parametrize("name", ["ecdsa-256", "ecdsa-384", "ecdsa-521", "rsa-3072"])
def test_byte_flips_of_other_signatures_are_refused(keydir: Path, name: str) -> None:
    blob = unarmor(sign(MESSAGE, load_private_key(keydir / name), NS))
    positions = sorted({*range(0, len(blob), 5), *range(len(blob) - 80, len(blob))})
    for pos in positions:
        flipped = blob[:pos] + bytes([blob[pos] ^ 0x01]) + blob[pos + 1 :]
        _refused(MESSAGE, armor(flipped))


def test_wrong_namespace_names_both(good: str) -> None:
    err = _refused(MESSAGE, good, "tachiai-receipt")
    assert "'tachiai-approval'" in str(err) and "'tachiai-receipt'" in str(err)
    assert "ssh-keygen -Y sign -n tachiai-receipt" in err.hint


def test_message_changed_by_one_byte_is_refused(good: str) -> None:
    for pos in (0, 1, len(MESSAGE) // 2, len(MESSAGE) - 1):
        changed = MESSAGE[:pos] + bytes([MESSAGE[pos] ^ 0x20]) + MESSAGE[pos + 1 :]
        err = _refused(changed, good)
        assert "other bytes" in str(err)
    _refused(MESSAGE + b"\n", good)
    _refused(MESSAGE[:-1], good)


def test_truncated_armor_at_every_length_is_refused(good: str) -> None:
    content = good.rstrip("\n")
    for length in range(len(content)):
        _refused(MESSAGE, good[:length])


def test_truncated_blob_at_every_length_names_the_part(good: str) -> None:
    blob = unarmor(good)
    seen = set()
    for length in range(len(blob)):
        err = _refused(MESSAGE, armor(blob[:length]))
        seen.add(str(err).split(":", 1)[-1].strip())
    for part in (
        "SSHSIG preamble",
        "version",
        "public key",
        "namespace",
        "hash algorithm",
        "signature",
    ):
        assert any(f"the {part} is cut short" in text for text in seen), part


def test_trailing_garbage_is_refused(good: str) -> None:
    blob = unarmor(good)
    assert "unexpected bytes" in str(_refused(MESSAGE, armor(blob + b"\0")))
    parts = fields(blob)
    parts[6] += string(b"extra")
    assert "unexpected bytes" in str(_refused(MESSAGE, build(parts)))
    assert "extra text" in str(_refused(MESSAGE, good + "more\n"))


def test_huge_length_prefixes_are_refused(good: str) -> None:
    blob = unarmor(good)
    for offset in (10, 10 + 4 + 51):  # the public key, then the namespace length
        for size in (0xFFFFFFFF, 0x80000000, len(blob)):
            bad = blob[:offset] + struct.pack(">I", size) + blob[offset + 4 :]
            assert "cut short" in str(_refused(MESSAGE, armor(bad)))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "hello",
        "-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n",
        "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n",
        "-----BEGIN SSH SIGNATURE-----\n!!!!\n-----END SSH SIGNATURE-----\n",
        "-----BEGIN SSH SIGNATURE-----\nQUJD=\n-----END SSH SIGNATURE-----\n",
        "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n",
        "-----BEGIN PGP SIGNATURE-----\nU1NIU0lH\n-----END PGP SIGNATURE-----\n",
        "-----BEGIN SSH SIGNATURE-----\nＵ１ＮＩ\n-----END SSH SIGNATURE-----\n",
        "署名",
    ],
)
def test_not_a_signature(text: str) -> None:
    _refused(MESSAGE, text)


def test_non_ascii_bytes_and_oversized_input(good: str) -> None:
    assert "non-ASCII" in str(_refused(MESSAGE, b"\xff\xfe" + good.encode()))
    assert "non-ASCII" in str(_refused(MESSAGE, good[:40] + "é" + good[41:]))
    assert "too large" in str(_refused(MESSAGE, good + "A" * 70_000))


def test_wrong_magic_and_version(good: str) -> None:
    parts = fields(unarmor(good))
    parts[0] = b"SSHSIH"
    assert "not an SSH signature" in str(_refused(MESSAGE, build(parts)))
    parts = fields(unarmor(good))
    parts[1] = struct.pack(">I", 2)
    assert "version 2" in str(_refused(MESSAGE, build(parts)))


def test_unsupported_hash_algorithm(ed_key: ed25519.Ed25519PrivateKey, good: str) -> None:
    parts = fields(unarmor(good))
    for name in ("sha1", "md5", "SHA512", "sha384"):
        parts[5] = name.encode()
        raw = ed_key.sign(b"SSHSIG" + string(NS.encode()) + string(b"") + string(name.encode()))
        parts[6] = string(b"ssh-ed25519") + string(raw)
        assert "hash algorithm" in str(_refused(MESSAGE, build(parts)))


def test_reserved_field_is_covered_by_the_signature(
    ed_key: ed25519.Ed25519PrivateKey, good: str
) -> None:
    parts = fields(unarmor(good))
    parts[4] = b"tag"
    _refused(MESSAGE, build(parts))
    digest = hashlib.sha512(MESSAGE).digest()
    data = b"SSHSIG" + string(NS.encode()) + string(b"tag") + string(b"sha512") + string(digest)
    parts[6] = string(b"ssh-ed25519") + string(ed_key.sign(data))
    assert verify(MESSAGE, build(parts), NS)  # PROTOCOL.sshsig: verifiers ignore its content


def test_swapped_public_key_is_refused(keydir: Path, good: str) -> None:
    parts = fields(unarmor(good))
    parts[2] = public_key_blob(load_private_key(keydir / "other-ed25519"))
    assert "other bytes" in str(_refused(MESSAGE, build(parts)))
    parts[2] = public_key_blob(load_private_key(keydir / "ecdsa-256"))
    assert "does not fit this key" in str(_refused(MESSAGE, build(parts)))
    parts[2] = public_key_blob(load_private_key(keydir / "rsa-3072"))
    _refused(MESSAGE, build(parts))
    parts[2] = string(b"ssh-dss") + b"\0" * 40
    assert "public key" in str(_refused(MESSAGE, build(parts)))


def test_non_canonical_ecdsa_numbers_are_refused(keydir: Path) -> None:
    parts = fields(unarmor(sign(MESSAGE, load_private_key(keydir / "ecdsa-256"), NS)))
    head = string(b"ecdsa-sha2-nistp256")
    inner = parts[6][len(head) + 4 :]
    (r_len,) = struct.unpack(">I", inner[:4])
    r, rest = inner[4 : 4 + r_len], inner[4 + r_len :]
    for bad_r in (b"\0" + r, b"", b"\x80" + r[1:]):
        parts[6] = head + string(string(bad_r) + rest)
        _refused(MESSAGE, build(parts))


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_arbitrary_text_is_refused(text: str) -> None:
    with pytest.raises(SignatureError):
        verify(MESSAGE, text, NS)


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_arbitrary_blob_in_armor_is_refused(blob: bytes) -> None:
    with pytest.raises(SignatureError):
        verify(MESSAGE, armor(blob), NS)
    with pytest.raises(SignatureError):
        verify(MESSAGE, armor(b"SSHSIG\0\0\0\1" + blob), NS)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_mutations_of_a_good_signature_are_refused(good: str, data: st.DataObject) -> None:
    blob = bytearray(unarmor(good))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        action = data.draw(st.sampled_from(["set", "insert", "delete"]))
        if action == "set":
            blob[pos] = data.draw(st.integers(0, 255))
        elif action == "insert":
            blob.insert(pos, data.draw(st.integers(0, 255)))
        else:
            del blob[pos]
    if bytes(blob) == unarmor(good):
        return
    with pytest.raises(SignatureError):
        verify(MESSAGE, armor(bytes(blob)), NS)


def test_compressed_ecdsa_point_in_signature_is_refused(good: str) -> None:
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    )
    parts = fields(unarmor(good))
    parts[2] = string(b"ecdsa-sha2-nistp256") + string(b"nistp256") + string(point)
    assert "public key" in str(_refused(MESSAGE, build(parts)))
