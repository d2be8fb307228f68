"""The age profile: interoperable both ways with the `age` command-line tool, and strict.

What we seal `age -d` opens; what `age -r` seals we open; every flipped byte, truncation,
swapped key or damaged recipient string is refused with an AgeError or KeyFileError.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import KeyFileError
from gateway.identity import age

needs_age = pytest.mark.skipif(
    shutil.which("age") is None, reason="age is not installed (scripts/test installs it)"
)
SIZES = [0, 1, age.CHUNK - 1, age.CHUNK, age.CHUNK + 1, 2 * age.CHUNK, 3 * age.CHUNK + 17,
         20 * age.CHUNK + 5]  # the last: more than one batch of the writer thread


def _seal(data: bytes, *keys: str) -> bytes:
    out = io.BytesIO()
    age.encrypt(io.BytesIO(data), out, [age.parse_recipient(k) for k in keys])
    return out.getvalue()


def _open(sealed: bytes, *identities: X25519PrivateKey) -> bytes:
    out = io.BytesIO()
    age.decrypt(io.BytesIO(sealed), out, identities)
    return out.getvalue()


@pytest.fixture
def identity(tmp_path: Path) -> tuple[Path, X25519PrivateKey, str]:
    key = X25519PrivateKey.generate()
    path = tmp_path / "identity.txt"
    path.write_text(
        f"# created: test\n# public key: {age.recipient_string(key)}\n{age.identity_string(key)}\n"
    )
    return path, key, age.recipient_string(key)


@needs_age
@pytest.mark.parametrize("size", SIZES)
def test_age_cli_opens_what_we_seal(
    tmp_path: Path, identity: tuple[Path, X25519PrivateKey, str], size: int
) -> None:
    path, _key, recipient = identity
    data = os.urandom(size)
    sealed = tmp_path / "x.age"
    sealed.write_bytes(_seal(data, recipient))
    opened = subprocess.run(
        ["age", "-d", "-i", str(path), str(sealed)], capture_output=True, check=True
    )
    assert opened.stdout == data


@needs_age
@pytest.mark.parametrize("size", SIZES)
def test_we_open_what_age_cli_seals(tmp_path: Path, size: int) -> None:
    keyfile = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(keyfile)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(keyfile)], check=True, capture_output=True, text=True
    ).stdout.strip()
    data = os.urandom(size)
    plain = tmp_path / "plain"
    plain.write_bytes(data)
    sealed = subprocess.run(
        ["age", "-r", recipient, str(plain)], check=True, capture_output=True
    ).stdout
    identities = age.parse_identities(keyfile.read_text())
    assert age.recipient_string(identities[0]) == recipient
    assert _open(sealed, *identities) == data


@needs_age
def test_age_cli_with_several_recipients_and_armor_free_output(tmp_path: Path) -> None:
    keys = [X25519PrivateKey.generate() for _ in range(3)]
    data = b"several recipients\n" * 1000
    sealed = _seal(data, *(age.recipient_string(k) for k in keys))
    for key in keys:
        ident = tmp_path / "id"
        ident.write_text(age.identity_string(key) + "\n")
        out = subprocess.run(
            ["age", "-d", "-i", str(ident)], input=sealed, capture_output=True, check=True
        )
        assert out.stdout == data


def test_counts_and_hashes_in_the_same_pass() -> None:
    import hashlib

    key = X25519PrivateKey.generate()
    data = os.urandom(200_000)
    out = io.BytesIO()
    seen = hashlib.sha256()
    counted = age.encrypt(
        io.BytesIO(data), out, [key.public_key()], on_plain=lambda chunk: seen.update(chunk)
    )
    assert seen.hexdigest() == hashlib.sha256(data).hexdigest()
    assert counted.size == len(out.getvalue())
    assert counted.sha256 == hashlib.sha256(out.getvalue()).hexdigest()
    assert age.decrypt(io.BytesIO(out.getvalue()), io.BytesIO(), [key]).size == len(data)


class _FullDisk(io.BytesIO):
    """A file that takes `room` bytes, then fails as a full disk does."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.tell() + len(data) > self.room:
            raise OSError(28, "No space left on device")
        return super().write(data)


@pytest.mark.parametrize("room", [0, 100, 3 << 20])
def test_a_write_that_fails_is_raised_and_its_thread_ended(room: int) -> None:
    # The sealed bytes are written on a thread of their own, beside the encryption.
    import threading

    key = X25519PrivateKey.generate()
    with pytest.raises(OSError, match="No space"):
        age.encrypt(io.BytesIO(os.urandom(8 << 20)), _FullDisk(room), [key.public_key()])
    assert not [t for t in threading.enumerate() if t.name == "age-writer"]


def test_a_large_file_is_written_in_order_and_hashed_as_written() -> None:
    import hashlib

    key = X25519PrivateKey.generate()
    data = os.urandom((5 << 20) + 12345)  # several batches of chunks, a short last chunk
    out = io.BytesIO()
    counted = age.encrypt(io.BytesIO(data), out, [key.public_key()])
    assert counted.sha256 == hashlib.sha256(out.getvalue()).hexdigest()
    opened = io.BytesIO()
    assert age.decrypt(io.BytesIO(out.getvalue()), opened, [key]).size == len(data)
    assert opened.getvalue() == data


def test_every_flipped_byte_is_refused() -> None:
    key = X25519PrivateKey.generate()
    data = os.urandom(age.CHUNK + 100)
    sealed = _seal(data, age.recipient_string(key))
    # Header, nonce, both chunks: sample positions across the whole file.
    for pos in [*range(0, 200, 7), *range(len(sealed) - 200, len(sealed), 13), len(sealed) // 2]:
        damaged = bytearray(sealed)
        damaged[pos] ^= 0x01
        with pytest.raises((age.AgeError, KeyFileError)):
            _open(bytes(damaged), key)


@pytest.mark.parametrize("cut", [1, 16, age.CHUNK, age.CHUNK + 16 + 1])
def test_truncation_is_refused(cut: int) -> None:
    key = X25519PrivateKey.generate()
    sealed = _seal(os.urandom(2 * age.CHUNK + 5), age.recipient_string(key))
    with pytest.raises(age.AgeError):
        _open(sealed[:-cut], key)


def test_dropping_a_whole_final_chunk_is_refused() -> None:
    key = X25519PrivateKey.generate()
    data = os.urandom(2 * age.CHUNK)
    sealed = _seal(data, age.recipient_string(key))
    with pytest.raises(age.AgeError, match="authentication"):
        _open(sealed[: -(age.CHUNK + 16)], key)


def test_wrong_identity_is_refused() -> None:
    sealed = _seal(b"secret", age.recipient_string(X25519PrivateKey.generate()))
    with pytest.raises(age.AgeError, match="not encrypted to any"):
        _open(sealed, X25519PrivateKey.generate())


def test_no_recipient_is_refused() -> None:
    with pytest.raises(age.AgeError):
        age.encrypt(io.BytesIO(b"x"), io.BytesIO(), [])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "age1",
        "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
        "AGE1" + "q" * 58,
        "age2" + "q" * 58,
    ],
)
def test_malformed_recipients_are_refused(text: str) -> None:
    with pytest.raises(KeyFileError):
        age.parse_recipient(text)


def test_one_changed_character_breaks_the_checksum() -> None:
    good = age.recipient_string(X25519PrivateKey.generate())
    for i in range(4, len(good)):
        swapped = good[:i] + ("q" if good[i] != "q" else "p") + good[i + 1 :]
        with pytest.raises(KeyFileError):
            age.parse_recipient(swapped)


def test_identity_file_needs_a_key() -> None:
    with pytest.raises(KeyFileError):
        age.parse_identities("# only a comment\n")
    with pytest.raises(KeyFileError):
        age.parse_identities(age.recipient_string(X25519PrivateKey.generate()))


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=3 * 1024))
def test_arbitrary_bytes_never_crash_the_parser(blob: bytes) -> None:
    key = X25519PrivateKey.generate()
    with pytest.raises(age.AgeError):
        _open(b"age-encryption.org/v1\n" + blob, key)
