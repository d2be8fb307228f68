"""Benchmark `transports`: SFTP upload and sealing throughput against same-run references.

SFTP: the gateway's `SftpTransport` uploads one random file (256 MiB by default) to a local
OpenSSH sshd, against OpenSSH's own `sftp` putting the same file in the same run. Sealing: the
`age` and `zip-aes256` profiles against the same-run ceiling (read + SHA-256 + AES-256-GCM of
the same bytes) and against the `age` and `7zz` command-line tools on the same file. Memory:
a 2 GiB file sealed (both profiles) and delivered over SFTP in a child process, peak RSS shown.
Run alone with `python -m bench.transports [--size-mib N] [--rss-gib N]`; results are
reported, never asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench import machine, report
from bench.results import MB, BenchError, Figure, Params, Result, rate
from gateway.config.routes import SftpEndpoint
from gateway.identity import age
from gateway.outbound import sealing
from gateway.transports import Parcel
from gateway.transports.sftp import SftpTransport

NAME = "transports"
DEFAULT_SIZE = 256 << 20
DEFAULT_RSS_SIZE = 2 << 30
QUICK_SIZE = 64 << 20  # the scale of a quick run (bench.run without --full)
QUICK_RSS_SIZE = 256 << 20
ROUNDS = 2  # each contender runs this often, alternating; the best run counts
_CHUNK = 1 << 20
_PASSWORD = "bench-only-password-not-a-secret"


def run(
    params: Params,
    work_dir: Path,
    size_bytes: int = DEFAULT_SIZE,
    rss_bytes: int = DEFAULT_RSS_SIZE,
) -> Result:
    """Run the benchmark in `work_dir`; `params` is accepted for the runner and not used.

    Raises:
        BenchError: sshd, `sftp`, `age` or `7zz` is missing, or a result is wrong.
    """
    if not params.full:
        size_bytes, rss_bytes = min(size_bytes, QUICK_SIZE), min(rss_bytes, QUICK_RSS_SIZE)
    for tool in ("sftp", "age", "7zz", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed (scripts/test installs it)")
    work_dir.mkdir(parents=True, exist_ok=True)
    src = work_dir / "payload.bin"
    _random_file(src, size_bytes)
    figures: list[Figure] = []
    figures += _sftp(src, size_bytes)
    figures += _sealing(src, size_bytes, work_dir)
    figures += _memory(work_dir, rss_bytes)
    return Result(
        name=NAME,
        parameters={"size_bytes": size_bytes, "rss_size_bytes": rss_bytes, "rounds": ROUNDS},
        figures=tuple(figures),
        notes=(
            "random (incompressible) bytes; MB = 10^6 bytes; best of "
            f"{ROUNDS} alternating runs per contender",
            "SFTP: both clients to the same local sshd (own host key, ed25519 client key); "
            "OpenSSH sftp uses its default cipher (chacha20-poly1305), the gateway prefers "
            "aes128-gcm (paramiko's fastest); the gateway also stats, renames and syncs nothing "
            "remote beyond what the protocol needs",
            "sealing: the gateway's figures include fsync of the sealed file and, for ZIP, "
            "re-reading it for its SHA-256 (pyzipper seeks back); the ceiling writes nothing",
            "memory: peak RSS (VmHWM) of one child process that seals the file with each "
            "profile and delivers it over SFTP",
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transports", description=__doc__)
    parser.add_argument("--size-mib", type=float, default=DEFAULT_SIZE / (1 << 20))
    parser.add_argument("--rss-gib", type=float, default=DEFAULT_RSS_SIZE / (1 << 30))
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument(
        "--rss-child", nargs=3, metavar=("FILE", "PORT", "FOLDER"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.rss_child:
        return _rss_child(*args.rss_child)
    base = args.work_dir.absolute() if args.work_dir else None
    with tempfile.TemporaryDirectory(prefix="tachiai-bench-", dir=base) as tmp:
        where = machine.describe(Path(tmp))
        try:
            result = run(
                Params(),
                Path(tmp) / NAME,
                round(args.size_mib * (1 << 20)),
                round(args.rss_gib * (1 << 30)),
            )
        except BenchError as exc:
            print(f"bench: {NAME} did not complete: {exc}", file=sys.stderr)
            return 1
    sys.stdout.write(report.table(where, [result]))
    return 0


# -- SFTP -------------------------------------------------------------------------------------


def _sftp(src: Path, size: int) -> list[Figure]:
    from tests.gateway.transports.servers import Sshd

    sshd = Sshd()
    sshd.start()
    try:
        inbox = sshd.folder("inbox")
        known_hosts = sshd.root / "known_hosts"
        known_hosts.write_text(sshd.known_hosts + "\n")
        endpoint = SftpEndpoint(
            "127.0.0.1",
            sshd.port,
            sshd.user,
            sshd.client_key,
            (sshd.host_key_line,),
            str(inbox),
            60.0,
        )
        digest = _sha256(src)
        ours: list[float] = []
        theirs: list[float] = []
        for i in range(ROUNDS):
            parcel = Parcel(f"t-bench{i:05d}", src, f"ours-{i}.bin", size, digest, "payload")
            t0 = time.perf_counter()
            SftpTransport("bench", endpoint).send(parcel)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run(
                [
                    "sftp",
                    "-q",
                    "-b",
                    "-",
                    "-i",
                    str(sshd.client_key),
                    "-o",
                    f"UserKnownHostsFile={known_hosts}",
                    "-P",
                    str(sshd.port),
                    f"{sshd.user}@127.0.0.1",
                ],
                input=f"put {src} {inbox}/theirs-{i}.bin\n",
                check=True,
                capture_output=True,
                text=True,
            )
            theirs.append(time.perf_counter() - t0)
            for name in (f"ours-{i}.bin", f"theirs-{i}.bin"):
                if (inbox / name).stat().st_size != size:
                    raise BenchError(f"{name} arrived with the wrong size")
                (inbox / name).unlink()
    finally:
        sshd.remove()
    group = "SFTP upload to a local OpenSSH sshd (same run)"
    ours_mb, theirs_mb = rate(size / MB, min(ours)), rate(size / MB, min(theirs))
    return [
        Figure("sftp.gateway.mb_per_s", "gateway SftpTransport (paramiko)", ours_mb, "MB/s", group),
        Figure("sftp.openssh.mb_per_s", "OpenSSH sftp put", theirs_mb, "MB/s", group),
        Figure(
            "sftp.ratio", "gateway ÷ OpenSSH sftp (goal ≥ 0.5)", ours_mb / theirs_mb, "×", group
        ),
    ]


# -- sealing ----------------------------------------------------------------------------------


def _sealing(src: Path, size: int, work: Path) -> list[Figure]:
    key = X25519PrivateKey.generate()
    recipient = age.recipient_string(key)
    out = work / "out"
    contenders: dict[str, Callable[[], object]] = {
        "ceiling": lambda: _ceiling(src),
        "age.gateway": lambda: sealing.seal_age(src, out, [recipient]),
        "age.cli": lambda: subprocess.run(
            ["age", "-r", recipient, "-o", str(out), str(src)], check=True, capture_output=True
        ),
        "age.cli_fsync": lambda: _age_cli_synced(src, out, recipient),
        "zip_store.gateway": lambda: sealing.seal_zip(src, "payload.bin", out, _PASSWORD, "store"),
        "zip_store.7zz": lambda: _7zz(src, out, "-mx=0"),
        "zip_deflate.gateway": lambda: sealing.seal_zip(
            src, "payload.bin", out, _PASSWORD, "deflate"
        ),
        "zip_deflate.7zz": lambda: _7zz(src, out, "-mx=5"),
        "zip_fast.gateway": lambda: sealing.seal_zip(
            src, "payload.bin", out, _PASSWORD, "deflate", 1
        ),
        "zip_fast.7zz": lambda: _7zz(src, out, "-mx=1"),
    }
    best: dict[str, float] = {}
    for _ in range(ROUNDS):
        for name, action in contenders.items():
            out.unlink(missing_ok=True)
            t0 = time.perf_counter()
            action()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
    out.unlink(missing_ok=True)
    mb = {name: rate(size / MB, seconds) for name, seconds in best.items()}
    group = "sealing throughput, same file, same run"
    labels = {
        "ceiling": "ceiling: read + SHA-256 + AES-256-GCM",
        "age.gateway": "gateway age (cryptography ChaCha20-Poly1305)",
        "age.cli": "age command-line tool",
        "age.cli_fsync": "age command-line tool, then fsync of its output",
        "zip_store.gateway": "gateway zip-aes256, store",
        "zip_store.7zz": "7zz -tzip -mem=AES256 -mx=0",
        "zip_deflate.gateway": "gateway zip-aes256, deflate (level 6)",
        "zip_deflate.7zz": "7zz -tzip -mem=AES256 -mx=5",
        "zip_fast.gateway": "gateway zip-aes256, deflate level 1",
        "zip_fast.7zz": "7zz -tzip -mem=AES256 -mx=1",
    }
    figures = [
        Figure(f"seal.{name}.mb_per_s", labels[name], value, "MB/s", group)
        for name, value in mb.items()
    ]
    ratios = "sealing ratios"
    figures += [
        Figure(
            "seal.age.vs_ceiling",
            "gateway age ÷ ceiling",
            mb["age.gateway"] / mb["ceiling"],
            "×",
            ratios,
        ),
        Figure(
            "seal.age.vs_cli",
            "gateway age ÷ age CLI",
            mb["age.gateway"] / mb["age.cli"],
            "×",
            ratios,
        ),
        Figure(
            "seal.age.vs_cli_fsync",
            "gateway age ÷ age CLI + fsync (the same durability)",
            mb["age.gateway"] / mb["age.cli_fsync"],
            "×",
            ratios,
        ),
        Figure(
            "seal.zip_store.vs_ceiling",
            "gateway zip store ÷ ceiling",
            mb["zip_store.gateway"] / mb["ceiling"],
            "×",
            ratios,
        ),
        Figure(
            "seal.zip_store.vs_7zz",
            "gateway zip store ÷ 7zz store",
            mb["zip_store.gateway"] / mb["zip_store.7zz"],
            "×",
            ratios,
        ),
        Figure(
            "seal.zip_fast.vs_7zz",
            "gateway zip deflate level 1 ÷ 7zz -mx=1",
            mb["zip_fast.gateway"] / mb["zip_fast.7zz"],
            "×",
            ratios,
        ),
        Figure(
            "seal.zip_deflate.vs_7zz",
            "gateway zip deflate ÷ 7zz deflate",
            mb["zip_deflate.gateway"] / mb["zip_deflate.7zz"],
            "×",
            ratios,
        ),
    ]
    return figures


def _ceiling(src: Path) -> None:
    """Read once, SHA-256 and AES-256-GCM each 1 MiB chunk: the unavoidable work of a seal."""
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    digest = hashlib.sha256()
    counter = 0
    with open(src, "rb", buffering=0) as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            aead.encrypt(counter.to_bytes(12, "big"), chunk, None)
            counter += 1
    digest.hexdigest()


def _age_cli_synced(src: Path, out: Path, recipient: str) -> None:
    """The age CLI, then an fsync of what it wrote: the durability the gateway's seal has."""
    subprocess.run(["age", "-r", recipient, "-o", str(out), str(src)], check=True,
                   capture_output=True)
    fd = os.open(out, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _7zz(src: Path, out: Path, level: str) -> None:
    subprocess.run(
        [
            "7zz",
            "a",
            "-tzip",
            "-mem=AES256",
            level,
            f"-p{_PASSWORD}",
            "-bd",
            "-y",
            f"{out}.zip",
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    os.replace(f"{out}.zip", out)


# -- memory -----------------------------------------------------------------------------------


def _memory(work: Path, size: int) -> list[Figure]:
    from tests.gateway.transports.servers import Sshd

    big = work / "big.bin"
    _random_file(big, size)
    sshd = Sshd()
    sshd.start()
    try:
        inbox = sshd.folder("inbox")
        t0 = time.perf_counter()
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.transports",
                "--rss-child",
                str(big),
                str(sshd.port),
                str(inbox),
            ],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "TACHIAI_BENCH_SSHD_ROOT": str(sshd.root)},
            cwd=Path(__file__).resolve().parent.parent,
        )
        seconds = time.perf_counter() - t0
        delivered = sorted(p.stat().st_size for p in inbox.iterdir())
    finally:
        sshd.remove()
        big.unlink(missing_ok=True)
    peak_kib = int(child.stdout.split()[-1])
    if delivered[-1] < size:
        raise BenchError("the large file was not delivered whole")
    group = f"memory: {size / (1 << 30):g} GiB sealed (age, zip store) and sent over SFTP"
    print(
        f"peak RSS of the {size / (1 << 30):g} GiB seal+deliver child: {peak_kib / 1024:.1f} MiB",
        file=sys.stderr,
    )
    return [
        Figure(
            "memory.peak_rss_mib", "peak RSS of the child process", peak_kib / 1024, "MiB", group
        ),
        Figure("memory.seconds", "wall time (2 seals + 2 uploads)", seconds, "s", group),
    ]


def _rss_child(file: str, port: str, folder: str) -> int:
    src = Path(file)
    root = Path(os.environ["TACHIAI_BENCH_SSHD_ROOT"])
    host_key = " ".join((root / "conf" / "host_ed25519_key.pub").read_text().split()[:2])
    endpoint = SftpEndpoint(
        "127.0.0.1", int(port), "nobody", root / "client_key", (host_key,), folder, 120.0
    )
    key = X25519PrivateKey.generate()
    for profile in ("age", "zip-aes256"):
        out = src.with_name(f"sealed-{profile}")
        if profile == "age":
            sealed = sealing.seal_age(src, out, [age.recipient_string(key)])
        else:
            sealed = sealing.seal_zip(src, "big.bin", out, _PASSWORD, "store")
        parcel = Parcel(
            f"t-rss-{profile}",
            out,
            f"big.{profile}",
            sealed.sealed_size,
            sealed.sealed_sha256,
            "big.bin",
        )
        SftpTransport("bench", endpoint).send(parcel)
        out.unlink()
    # VmHWM: this process image's own peak (ru_maxrss would carry the forking parent's over
    # execve).
    print(_peak_rss_kib())
    return 0


def _peak_rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        return int(next(line.split()[1] for line in fh if line.startswith("VmHWM:")))


def _random_file(path: Path, size: int) -> None:
    block = os.urandom(_CHUNK)
    with open(path, "wb") as fh:
        left = size
        counter = 0
        while left > 0:
            # Each MiB differs (a counter in front), so nothing compresses or deduplicates.
            piece = counter.to_bytes(8, "big") + block[8:]
            fh.write(piece[:left])
            left -= len(piece)
            counter += 1


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


if __name__ == "__main__":
    sys.exit(main())
