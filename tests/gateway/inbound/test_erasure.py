"""The encrypted-at-rest format of held data (gateway.inbound.erasure): every size round-trips, and
every way to tamper with a copy — flip, cut, extend, reorder its chunks, or pass it off as
another holding's — fails authentication before a byte is released.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import StorageError
from gateway.inbound import erasure, holdings

CHUNK = erasure.CHUNK
HEAD = len(erasure.MAGIC) + 7
KEY = bytes(range(32))


def _write(path: Path, data: bytes, holding: str = "h-000000000001", key: bytes = KEY) -> None:
    with erasure.RestWriter(path, key, holding) as writer:
        for i in range(0, len(data), 300_001):  # odd write sizes cross chunk boundaries
            writer.write(data[i : i + 300_001])


def _read(path: Path, holding: str = "h-000000000001", key: bytes = KEY) -> bytes:
    return b"".join(erasure.read_plain(path, key, holding))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 7])
def test_every_size_round_trips(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "data.enc"
    _write(path, data)
    assert _read(path) == data
    if size >= 32:  # a shorter random string may occur in any ciphertext by chance
        assert data[:32] not in path.read_bytes()
    chunks = max(1, -(-size // CHUNK))  # the last chunk may be empty, never missing
    assert path.stat().st_size == HEAD + size + 16 * chunks


def _tampered(path: Path, how: str) -> None:
    raw = bytearray(path.read_bytes())
    body = raw[HEAD:]
    first, second = body[: CHUNK + 16], body[CHUNK + 16 :]
    if how == "flip":
        raw[HEAD + 5] ^= 1
    elif how == "truncate-last":
        raw = raw[:-1]
    elif how == "drop-last-chunk":
        raw = raw[: HEAD + CHUNK + 16]
    elif how == "reorder":
        raw = raw[:HEAD] + second + first
    elif how == "extend":
        raw = raw + first
    elif how == "header":
        raw[0] ^= 1
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    "how", ["flip", "truncate-last", "drop-last-chunk", "reorder", "extend", "header"]
)
def test_a_tampered_copy_fails_before_release(tmp_path: Path, how: str) -> None:
    path = tmp_path / "data.enc"
    _write(path, os.urandom(CHUNK + 1000))
    _tampered(path, how)
    released = []
    with pytest.raises(StorageError, match="fails authentication"):
        for chunk in erasure.read_plain(path, KEY, "h-000000000001"):
            released.append(chunk)
    assert how not in ("flip", "header") or released == []


def test_a_copy_passed_off_as_another_holdings_or_with_another_key_fails(tmp_path: Path) -> None:
    path = tmp_path / "data.enc"
    _write(path, b"synthetic rows")
    with pytest.raises(StorageError):
        _read(path, holding="h-000000000002")
    with pytest.raises(StorageError):
        _read(path, key=bytes(32))


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=5000), st.integers(0, 5000))
def test_any_flipped_bit_fails(data: bytes, at: int) -> None:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"tachiai-rest-{os.getpid()}.enc"
    try:
        _write(path, data)
        raw = bytearray(path.read_bytes())
        raw[at % len(raw)] ^= 1 << (at % 8)
        path.write_bytes(bytes(raw))
        with pytest.raises(StorageError):
            _read(path)
    finally:
        path.unlink(missing_ok=True)


def test_the_plaintext_stream_seeks_by_decrypting_again(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK + 123)
    path = tmp_path / "data.enc"
    _write(path, data)
    raw = holdings._ChunkReader(lambda: erasure.read_plain(path, KEY, "h-000000000001"), len(data))
    stream = io.BufferedReader(raw, buffer_size=CHUNK)
    assert stream.read(10) == data[:10]
    assert stream.seek(0) == 0 and stream.read() == data
    assert stream.seek(CHUNK + 5) == CHUNK + 5 and stream.read(20) == data[CHUNK + 5 : CHUNK + 25]
    assert stream.seek(-3, io.SEEK_END) == len(data) - 3 and stream.read() == data[-3:]
    assert stream.seek(0) == 0 and stream.read(4) == data[:4]
