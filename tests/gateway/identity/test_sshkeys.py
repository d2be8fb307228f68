"""Tests for gateway.identity.sshkeys against the real OpenSSH ssh-keygen."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import KeyFileError
from gateway.identity import sshkeys
from gateway.identity.sshkeys import (
    fingerprint,
    generate_ed25519,
    load_private_key,
    parse_public_key,
    public_key_line,
)

SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
pytestmark = pytest.mark.skipif(not Path(SSH_KEYGEN).exists(), reason="needs OpenSSH ssh-keygen")

KEY_SPECS = {
    "ed25519": ["-t", "ed25519"],
    "ecdsa-256": ["-t", "ecdsa", "-b", "256"],
    "ecdsa-384": ["-t", "ecdsa", "-b", "384"],
    "ecdsa-521": ["-t", "ecdsa", "-b", "521"],
    "rsa-3072": ["-t", "rsa", "-b", "3072"],
}


def run_keygen(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [SSH_KEYGEN, *args], input=stdin, capture_output=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One key of each kind, made by ssh-keygen, with comment 'witness@example'."""
    folder = tmp_path_factory.mktemp("keys")
    for name, spec in KEY_SPECS.items():
        done = run_keygen(*spec, "-q", "-N", "", "-C", "witness@example", "-f", str(folder / name))
        assert done.returncode == 0, done.stderr
    return folder


@pytest.mark.parametrize("name", list(KEY_SPECS))
def test_loads_ssh_keygen_keys_and_prints_the_same_public_line(keydir: Path, name: str) -> None:
    key = load_private_key(keydir / name)
    pub_fields = (keydir / f"{name}.pub").read_text().split()
    assert public_key_line(key) == " ".join(pub_fields[:2])
    assert public_key_line(key.public_key()) == " ".join(pub_fields[:2])


@pytest.mark.parametrize("name", list(KEY_SPECS))
def test_fingerprint_equals_ssh_keygen_lf(keydir: Path, name: str) -> None:
    printed = run_keygen("-lf", str(keydir / f"{name}.pub")).stdout.decode().split()[1]
    line = (keydir / f"{name}.pub").read_text()
    assert fingerprint(line) == printed
    assert fingerprint(parse_public_key(line)) == printed
    assert fingerprint(load_private_key(keydir / name)) == printed
    assert printed.startswith("SHA256:") and not printed.endswith("=")


def test_parse_public_key_ignores_comment_and_whitespace(keydir: Path) -> None:
    line = (keydir / "ed25519.pub").read_text()
    key = parse_public_key("  " + line.replace(" ", "\t", 1))
    assert public_key_line(key) == " ".join(line.split()[:2])


def _blob(keydir: Path, name: str) -> bytes:
    return base64.b64decode((keydir / f"{name}.pub").read_text().split()[1])


def _line(key_type: str, blob: bytes) -> str:
    return f"{key_type} {base64.b64encode(blob).decode()}"


@pytest.mark.parametrize(
    "line",
    [
        "",
        "   ",
        "ssh-ed25519",
        "ssh-ed25519 !!!notbase64",
        "ssh-ed25519 AAAA",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBIrq",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
        "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29t",
        "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t",
        "ssh-ed25519 ÄÖÜ",
        "ключ AAAA",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
    ],
)
def test_parse_public_key_refuses_garbage(line: str) -> None:
    with pytest.raises(KeyFileError):
        parse_public_key(line)


def test_parse_public_key_refuses_type_mismatch_and_trailing_bytes(keydir: Path) -> None:
    blob = _blob(keydir, "ed25519")
    with pytest.raises(KeyFileError, match="ssh-rsa"):
        parse_public_key(_line("ssh-rsa", blob))
    with pytest.raises(KeyFileError):
        parse_public_key(_line("ssh-ed25519", blob + b"\0"))
    with pytest.raises(KeyFileError):
        parse_public_key(_line("ssh-ed25519", blob[:-1]))


def test_parse_public_key_refuses_non_canonical_rsa(keydir: Path) -> None:
    blob = _blob(keydir, "rsa-3072")
    # string("ssh-rsa") then mpint e = 0x010001: pad e with a needless leading zero byte.
    head = 4 + len(b"ssh-rsa")
    (e_len,) = struct.unpack(">I", blob[head : head + 4])
    e = blob[head + 4 : head + 4 + e_len]
    padded = blob[:head] + struct.pack(">I", e_len + 1) + b"\0" + e + blob[head + 4 + e_len :]
    with pytest.raises(KeyFileError):
        parse_public_key(_line("ssh-rsa", padded))


def test_small_rsa_and_foreign_curves_are_refused(tmp_path: Path) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(KeyFileError, match="1024 bits"):
        public_key_line(small)
    k1 = ec.generate_private_key(ec.SECP256K1())
    with pytest.raises(KeyFileError, match="secp256k1"):
        public_key_line(k1)
    path = tmp_path / "k1.pem"
    _write_private(path, k1, serialization.PrivateFormat.PKCS8)
    with pytest.raises(KeyFileError, match="secp256k1"):
        load_private_key(path)


def _write_private(
    path: Path,
    key: object,
    fmt: serialization.PrivateFormat,
    mode: int = 0o600,
    passphrase: bytes | None = None,
) -> bytes:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    data: bytes = key.private_bytes(serialization.Encoding.PEM, fmt, enc)  # type: ignore[attr-defined]
    path.write_bytes(data)
    path.chmod(mode)
    return data


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o610, 0o601, 0o666])
def test_private_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "id_ed25519"
    _write_private(path, ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.OpenSSH)
    path.chmod(mode)
    with pytest.raises(KeyFileError) as caught:
        load_private_key(path)
    assert f"chmod 600 {path}" in caught.value.hint
    path.chmod(0o600)
    load_private_key(path)
    path.chmod(0o400)
    load_private_key(path)


def test_missing_directory_and_public_file_are_refused(keydir: Path, tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no key file"):
        load_private_key(tmp_path / "absent")
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_private_key(tmp_path)
    pub = tmp_path / "id.pub"
    shutil.copy(keydir / "ed25519.pub", pub)
    pub.chmod(0o600)
    with pytest.raises(KeyFileError, match="not a private key") as caught:
        load_private_key(pub)
    assert "AAAA" not in caught.value.diagnostics()


def test_damaged_key_is_refused_without_showing_key_material(tmp_path: Path) -> None:
    path = tmp_path / "id_ed25519"
    data = _write_private(
        path, ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.OpenSSH
    )
    lines = data.decode().splitlines()
    damaged = "\n".join([lines[0], lines[1][:20] + "A" * 10 + lines[1][30:], *lines[2:]])
    path.write_text(damaged + "\n")
    with pytest.raises(KeyFileError) as caught:
        load_private_key(path)
    text = caught.value.diagnostics()
    assert all(chunk not in text for chunk in lines[1:-1])


def test_encrypted_keys(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    formats = {
        "openssh": serialization.PrivateFormat.OpenSSH,
        "pkcs8": serialization.PrivateFormat.PKCS8,
    }
    for name, fmt in formats.items():
        path = tmp_path / f"enc-{name}"
        _write_private(path, key, fmt, passphrase=b"correct horse")
        with pytest.raises(KeyFileError, match="passphrase") as caught:
            load_private_key(path)
        assert "correct horse" not in caught.value.diagnostics()
        with pytest.raises(KeyFileError) as wrong:
            load_private_key(path, b"wrong")
        assert "passphrase" in wrong.value.hint
        loaded = load_private_key(path, b"correct horse")
        assert public_key_line(loaded) == public_key_line(key)


def test_passphrase_given_for_unencrypted_key_is_harmless(keydir: Path) -> None:
    key = load_private_key(keydir / "ed25519", b"not needed")
    assert public_key_line(key) == " ".join((keydir / "ed25519.pub").read_text().split()[:2])


def test_pem_and_dsa_keys(tmp_path: Path) -> None:
    pem = tmp_path / "pem"
    key = ec.generate_private_key(ec.SECP384R1())
    _write_private(pem, key, serialization.PrivateFormat.TraditionalOpenSSL)
    assert public_key_line(load_private_key(pem)) == public_key_line(key)
    dsa_path = tmp_path / "dsa"
    _write_private(
        dsa_path, dsa.generate_private_key(key_size=2048), serialization.PrivateFormat.PKCS8
    )
    with pytest.raises(KeyFileError, match="not accept"):
        load_private_key(dsa_path)


def test_generate_ed25519_interoperates_with_ssh_keygen(tmp_path: Path) -> None:
    path = tmp_path / "witness"
    line = generate_ed25519(path, "tanaka@city.example")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pub = path.with_name("witness.pub")
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    assert pub.read_text() == f"{line} tanaka@city.example\n"
    assert line.startswith("ssh-ed25519 AAAA") and len(line.split()) == 2
    derived = run_keygen("-y", "-f", str(path))
    assert derived.returncode == 0, derived.stderr
    assert derived.stdout.decode().split()[:2] == line.split()
    printed = run_keygen("-lf", str(pub)).stdout.decode().split()
    assert printed[1] == fingerprint(line) and printed[2] == "tanaka@city.example"
    assert public_key_line(load_private_key(path)) == line


def test_generate_ed25519_ignores_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        generate_ed25519(tmp_path / "k", "c")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_generate_ed25519_creates_private_file_exclusively_with_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy(path: str, flags: int, mode: int = 0o777, **kwargs: object) -> int:
        calls.append((str(path), flags, mode))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", spy)
    generate_ed25519(tmp_path / "k", "c")
    private = [c for c in calls if c[0] == str(tmp_path / "k")]
    assert len(private) == 1
    _, flags, mode = private[0]
    assert flags & os.O_CREAT and flags & os.O_EXCL and mode == 0o600


def test_generate_ed25519_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("precious")
    with pytest.raises(KeyFileError, match="already exists"):
        generate_ed25519(path, "c")
    assert path.read_text() == "precious"
    assert not (tmp_path / "k.pub").exists()

    other = tmp_path / "j"
    (tmp_path / "j.pub").write_text("precious pub")
    with pytest.raises(KeyFileError, match="already exists"):
        generate_ed25519(other, "c")
    assert not other.exists() and (tmp_path / "j.pub").read_text() == "precious pub"

    link = tmp_path / "link"
    link.symlink_to(tmp_path / "target")
    with pytest.raises(KeyFileError, match="already exists"):
        generate_ed25519(link, "c")
    assert not (tmp_path / "target").exists()


@pytest.mark.parametrize("comment", ["two\nlines", "tab\there", "bell\x07"])
def test_generate_ed25519_refuses_multiline_comment(tmp_path: Path, comment: str) -> None:
    with pytest.raises(KeyFileError, match="comment"):
        generate_ed25519(tmp_path / "k", comment)
    assert not (tmp_path / "k").exists()


def test_generate_ed25519_in_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot create"):
        generate_ed25519(tmp_path / "nope" / "k", "c")


@settings(max_examples=300)
@given(st.text())
def test_arbitrary_public_key_text_is_refused(text: str) -> None:
    with pytest.raises(KeyFileError):
        parse_public_key(text)


@settings(max_examples=500)
@given(st.sampled_from(sshkeys.KEY_TYPES), st.binary(max_size=600))
def test_arbitrary_public_key_blobs_are_refused(key_type: str, body: bytes) -> None:
    blob = struct.pack(">I", len(key_type)) + key_type.encode() + body
    try:
        key = sshkeys.public_key_from_blob(blob)
    except KeyFileError:
        return
    assert sshkeys.public_key_blob(key) == blob  # only a canonical, valid key gets through


def test_compressed_ecdsa_point_is_refused() -> None:
    # cryptography raises NotImplementedError for compressed points; it must become KeyFileError.
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    )
    parts = (b"ecdsa-sha2-nistp256", b"nistp256", point)
    blob = b"".join(struct.pack(">I", len(p)) + p for p in parts)
    with pytest.raises(KeyFileError, match="malformed"):
        parse_public_key(_line("ecdsa-sha2-nistp256", blob))
