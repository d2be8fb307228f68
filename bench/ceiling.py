"""Raw ceilings: what the hardware and libraries do with the same bytes and nothing else.

`read_hash_encrypt` is the unavoidable work of a transfer (read once, SHA-256, AES-256-CTR);
`aes_zip` is pyzipper's WinZip AES-256 archive of the same bytes alone, without the gateway's
hashing, syncing, database or ledger; `decode_split` reads, decodes and splits the text into
lines, the content check's ceiling; `transfer_work` is all of a transfer's work on its bytes
(hash, content check, AES ZIP, hash of the sealed bytes) in one thread, the floor a daemon's
CPU per file is compared with. Nothing here is durable: outputs are not fsynced.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

import pyzipper
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from policies.agreement import Agreement, Flow
from policies.content import check_file

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


def aes_zip(paths: Sequence[Path], out_dir: Path, compression: str, level: int = 6, *,
            hash_outputs: bool = False) -> float:
    """Seconds for pyzipper to write one AES-256 ZIP per file (one entry, streamed), and to
    SHA-256 each archive when `hash_outputs`.

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
        if hash_outputs:
            hashlib.sha256((out_dir / f"{i:04d}.zip").read_bytes()).hexdigest()
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


def transfer_work(paths: Sequence[Path], out_dir: Path, agreement: Agreement, flow: Flow,
                  on: dt.date, level: int = 6) -> float:
    """CPU seconds of this process to do, file by file, the work a transfer cannot skip: read
    and SHA-256 it, check its content against `flow` (policies.content), write it into a
    deflate (`level`) AES-256 ZIP and SHA-256 the archive. No database, ledger, fsync or
    second thread: what the daemon spends beyond this is its bookkeeping."""
    started = time.process_time()
    aes_zip(paths, out_dir, "deflate", level, hash_outputs=True)
    for path in paths:
        hashlib.sha256(path.read_bytes()).hexdigest()
        with open(path, "rb") as fh:
            verdict = check_file(fh, agreement, flow, on)
        if verdict.reasons:
            raise ValueError(f"{path.name}: {verdict.reasons[0].rule}")
    return time.process_time() - started
