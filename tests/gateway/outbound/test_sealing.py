"""Sealing profiles: what we seal opens with stock tools, hashes come from the same pass.

zip-aes256 opens with `7zz`, age with `age -d`, and the seed-003 workbook profile is a ZIP
(7zz) holding a workbook that opens only with its own password (msoffcrypto-tool, openpyxl).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import msoffcrypto
import openpyxl
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.errors import ConfigError
from gateway.identity import age
from gateway.outbound import sealing
from policies.errors import PolicyFileError
from policies.handlers import Registry
from tests.conftest import needs_7zz

needs_age = pytest.mark.skipif(shutil.which("age") is None, reason="age is not installed")


def _payload(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "payload"
    path.write_bytes(data)
    return path


def _7zz(zip_path: Path, password: str, out: Path) -> None:
    subprocess.run(
        ["7zz", "x", "-y", f"-o{out}", f"-p{password}", str(zip_path)],
        check=True,
        capture_output=True,
    )


@needs_7zz
@pytest.mark.parametrize("compression", ["deflate", "store"])
def test_zip_opens_with_7zz_and_hashes_match(tmp_path: Path, compression: str) -> None:
    data = os.urandom(300_000)
    out = tmp_path / "sealed.zip"
    password = sealing.new_password()
    sealed = sealing.seal_zip(_payload(tmp_path, data), "名簿.csv", out, password, compression)
    assert sealed.plain_sha256 == hashlib.sha256(data).hexdigest()
    assert sealed.sealed_sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    _7zz(out, password, tmp_path / "opened")
    assert (tmp_path / "opened" / "名簿.csv").read_bytes() == data
    assert password.encode() not in out.read_bytes()


@needs_7zz
def test_the_compression_level_is_applied_and_7zz_opens_every_level(tmp_path: Path) -> None:
    # Varied but compressible rows, as a CSV is: level 9 must come out smaller than level 1,
    # which fails if the level never reaches zlib.
    data = b"".join(
        b"TEST %06d,%s,2026/10/%02d\r\n" % (i, hashlib.sha256(b"%d" % (i % 97)).hexdigest()[:12]
                                            .encode(), i % 28 + 1)
        for i in range(60_000)
    )
    sizes = {}
    for level in (1, 9):
        out = tmp_path / f"sealed-{level}.zip"
        password = sealing.new_password()
        sealed = sealing.seal_zip(
            _payload(tmp_path, data), "rows.csv", out, password, "deflate", level
        )
        _7zz(out, password, tmp_path / f"opened-{level}")
        assert (tmp_path / f"opened-{level}" / "rows.csv").read_bytes() == data
        sizes[level] = sealed.sealed_size
    assert sizes[9] < sizes[1] < len(data) // 2


@needs_age
def test_age_seal_opens_with_age_cli(tmp_path: Path) -> None:
    key = X25519PrivateKey.generate()
    ident = tmp_path / "id.txt"
    ident.write_text(age.identity_string(key) + "\n")
    data = os.urandom(age.CHUNK * 3 + 5)
    out = tmp_path / "sealed.age"
    sealed = sealing.seal_age(_payload(tmp_path, data), out, [age.recipient_string(key)])
    assert sealed.plain_sha256 == hashlib.sha256(data).hexdigest()
    assert sealed.plain_size == len(data)
    assert sealed.sealed_sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert sealed.sealed_size == out.stat().st_size
    opened = subprocess.run(
        ["age", "-d", "-i", str(ident), str(out)], capture_output=True, check=True
    )
    assert opened.stdout == data


def _workbook() -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["氏名(英字)", "在留カード番号"])
    sheet.append(["TEST TARO", "AB12345678CD"])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


@needs_7zz
def test_workbook_profile_encrypts_the_sheet_and_the_zip(tmp_path: Path) -> None:
    data = _workbook()
    out = tmp_path / "sealed.zip"
    zip_pw, book_pw = sealing.new_password(), sealing.new_password()
    sealed = sealing.seal_workbook_zip(
        _payload(tmp_path, data), "滞納者.xlsx", out, zip_pw, book_pw, "deflate"
    )
    assert sealed.plain_sha256 == hashlib.sha256(data).hexdigest()
    assert sealed.plain_size == len(data)
    _7zz(out, zip_pw, tmp_path / "opened")
    inner = (tmp_path / "opened" / "滞納者.xlsx").read_bytes()
    assert inner != data and b"TEST TARO" not in inner
    office = msoffcrypto.OfficeFile(io.BytesIO(inner))
    assert office.is_encrypted()
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do for a wrong password
        office.load_key(password="wrong")
        office.decrypt(io.BytesIO())
    office = msoffcrypto.OfficeFile(io.BytesIO(inner))
    office.load_key(password=book_pw)
    plain = io.BytesIO()
    office.decrypt(plain)
    sheet = openpyxl.load_workbook(plain).active
    assert sheet["A2"].value == "TEST TARO"
    doc = sealing.password_document(zip_pw, book_pw).decode()
    assert f"zip-password: {zip_pw}" in doc and f"workbook-password: {book_pw}" in doc


def test_workbook_profile_refuses_what_is_not_a_workbook(tmp_path: Path) -> None:
    with pytest.raises(sealing.SealRefused, match="Excel workbook"):
        sealing.seal_workbook_zip(
            _payload(tmp_path, b"a,b\r\n1,2\r\n"), "x.xlsx", tmp_path / "s.zip", "a", "b", "deflate"
        )


def _registry(**extra: str) -> Registry:
    handler = {
        "name": "takahashi",
        "party": "nhi-central",
        "roles": ["receive"],
        "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB1V6kzZ9n5yAHmpdbBTcs5u0c4sSj"
        "zHQ1PxXFxqA8bS",
        "agreements": ["a"],
        "designated_from": dt.date(2023, 1, 1),
        **extra,
    }
    return Registry.from_mapping({"handlers": [handler]}, "registry.toml")


def test_age_recipients_come_from_designated_receivers_and_fail_closed() -> None:
    key = age.recipient_string(X25519PrivateKey.generate())
    reg = _registry(age_recipient=key)
    assert sealing.age_recipients(reg, "a", "nhi-central", dt.date(2026, 1, 1)) == [
        ("takahashi", key)
    ]
    for registry, agreement, on in (
        (reg, "other", dt.date(2026, 1, 1)),
        (reg, "a", dt.date(2022, 1, 1)),
        (_registry(), "a", dt.date(2026, 1, 1)),
    ):
        with pytest.raises(ConfigError, match="age key"):
            sealing.age_recipients(registry, agreement, "nhi-central", on)


def test_registry_refuses_a_malformed_age_recipient() -> None:
    with pytest.raises(PolicyFileError, match="age_recipient"):
        _registry(age_recipient="age1notakey")


_RSS_CHILD = """
import os, sys
from pathlib import Path
from gateway.identity import age
from gateway.outbound import sealing
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
src, out, profile = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
if profile == "age":
    sealing.seal_age(src, out, [age.recipient_string(X25519PrivateKey.generate())])
else:
    sealing.seal_zip(src, "big.bin", out, sealing.new_password(), "store")
# VmHWM: this process image's own peak; ru_maxrss would carry pytest's RSS over the exec.
with open("/proc/self/status") as fh:
    print(next(line.split()[1] for line in fh if line.startswith("VmHWM:")))
"""


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["age", "zip-aes256"])
def test_sealing_a_large_file_keeps_memory_flat(tmp_path: Path, profile: str) -> None:
    """512 MiB through each profile in a child process: peak RSS stays far below the file."""
    src = tmp_path / "big.bin"
    with open(src, "wb") as fh:
        block = os.urandom(1 << 20)
        for _ in range(512):
            fh.write(block)
    result = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(src), str(tmp_path / "out"), profile],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    peak_kib = int(result.stdout.strip().splitlines()[-1])
    print(f"{profile}: peak RSS {peak_kib / 1024:.1f} MiB for a 512 MiB file")
    assert peak_kib < 200 * 1024
