"""Raw ceilings: what the hardware and libraries do with the same bytes and nothing else.

`read_hash_encrypt` is the unavoidable work of a transfer (read once, SHA-256, AES-256-CTR);
`aes_zip` is pyzipper's WinZip AES-256 archive of the same bytes alone, without the gateway's
hashing, syncing, database or ledger; `decode_split` reads, decodes and splits the text into
lines, the content check's ceiling. Nothing here is durable: outputs are not fsynced.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

import pyzipper
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CHUNK = 1 << 20
ZIP_PASSWORD = b"bench-only-password-not-a-secret"
_COMPRESSION = {"store": pyzipper.ZIP_STORED, "deflate": pyzipper.ZIP_DEFLATED}


def read_hash_encrypt(paths: Sequence[Path]) -> float:
    """Seconds to read every file once, SHA-256 it and encrypt it with AES-256-CTR."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    out = bytearray(CHUNK + 15)  # update_into wants room for one block more
    started = time.perf_counter()
    for path in paths:
        digest = hashlib.sha256()
        # A fresh key and nonce per file, as a seal would use.
        encryptor = Cipher(algorithms.AES256(os.urandom(32)), modes.CTR(os.urandom(16))).encryptor()
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                digest.update(view[:n])
                encryptor.update_into(view[:n], out)
        encryptor.finalize()
        digest.hexdigest()
    return time.perf_counter() - started


def aes_zip(paths: Sequence[Path], out_dir: Path, compression: str, level: int = 6) -> float:
    """Seconds for pyzipper to write one AES-256 ZIP per file (one entry, streamed).

    The archives are removed afterwards; `compression` is "store" or "deflate" (at zlib `level`).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for i, path in enumerate(paths):
        with (
            open(path, "rb") as src,
            pyzipper.AESZipFile(
                out_dir / f"{i:04d}.zip",
                "w",
                compression=_COMPRESSION[compression],
                compresslevel=level if compression == "deflate" else None,
                encryption=pyzipper.WZ_AES,
            ) as zf,
        ):
            zf.setpassword(ZIP_PASSWORD)
            zf.setencryption(pyzipper.WZ_AES, nbits=256)
            with zf.open(path.name, "w", force_zip64=True) as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
    elapsed = time.perf_counter() - started
    for i in range(len(paths)):
        (out_dir / f"{i:04d}.zip").unlink()
    return elapsed


def decode_split(paths: Sequence[Path], encoding: str) -> float:
    """Seconds to read every file once, decode it and split it into lines: the least any check
    of its text must do, the content check's ceiling."""
    started = time.perf_counter()
    for path in paths:
        path.read_bytes().decode(encoding).splitlines()
    return time.perf_counter() - started
