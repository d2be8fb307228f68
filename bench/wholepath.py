"""Benchmark `wholepath`: what a sender and a witness wait for, with the daemon running.

A real daemon (`tachiai run`, a child process) on a fresh demo gateway takes N synthetic CSV
files dropped into its outbox (renamed in, as a careful sender does), checks them, waits for the
witness, seals and delivers them. The witness approves three times over on fresh files: with the
real CLI, one `tachiai approve ID --key KEY` per file, then one `tachiai approve ID… --key KEY`
for them all; then with OpenSSH alone, one `ssh-keygen -Y sign` per file of the statement the
daemon publishes in its approvals folder (gateway.outbound.approval_folder). Beside it, in the
same run on copies of the same files, what an operator does by hand:
`sha256sum`, `7zz a -tzip -mem=AES256 -p…` and `mv` per file. CPU counts the daemon, every
`tachiai` command or `ssh-keygen` the witness runs and (for the loop) every tool it runs; the
bench's own polling is not counted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from bench import ceiling, machine, payload
from bench.results import BenchError, Figure, Params, Result, rate
from gateway import bootstrap
from gateway.config.policyfiles import load_agreements
from gateway.config.settings import load_settings

NAME = "wholepath"
_T = TypeVar("_T")
WITNESS = "suzuki"
#: zlib's level 5 compresses these CSVs to about the size 7zz's default (-mx5, the manual loop's)
#: does, at half the CPU of zlib's 6 (the demo's): the same work on both sides. Both sizes are
#: printed, so a payload where they part is seen.
SEAL_LEVEL = 5
_TIMEOUT_SECONDS = 600.0
_PASSWORD = "bench-only-password-not-a-secret"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
#: The operator's loop, one file at a time: hash it, seal it with 7-Zip, move it out.
MANUAL_LOOP = r"""
set -e
for f in "$SRC"/*.csv; do
  name=$(basename "$f")
  sha256sum "$f" > "$WORK/$name.sha256"
  7zz a -tzip -mem=AES256 -p"$PASSWORD" -bd -y "$WORK/$name.zip" "$f" > /dev/null
  mv "$WORK/$name.zip" "$DEST/"
done
"""


def run(params: Params, work_dir: Path) -> Result:
    """Run the benchmark in `work_dir` (which must be empty or absent).

    Raises:
        BenchError: a tool is missing, the daemon does not start, or a file is not delivered.
    """
    for tool in ("7zz", "sha256sum", "bash", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed (scripts/test installs it)")
    home = work_dir / "tachiai"
    bootstrap.init(home, demo=True)
    config = home / "tachiai.toml"
    text = config.read_text(encoding="utf-8")
    text = re.sub(r"compression_level = [0-9]+", f"compression_level = {SEAL_LEVEL}", text)
    if params.check_processes is not None:
        text = text.replace("[gateway]\n", f"[gateway]\ncheck_processes = "
                            f"{params.check_processes}\n", 1)
    config.write_text(text, encoding="utf-8")
    settings = load_settings(config)
    check_processes, settle_seconds = settings.check_processes, settings.settle_seconds
    staging = work_dir / "staging"
    staging.mkdir()
    outbox = home / "outbox" / bootstrap.DEMO_AGREEMENT / bootstrap.DEMO_FLOW
    n = params.files
    batches = {
        "single": payload.write_files(_fresh(staging / "single"), n, params.size_bytes,
                                      params.encoding),
        "batched": payload.write_files(_fresh(staging / "batched"), n, params.size_bytes,
                                       params.encoding),
        "folder": payload.write_files(_fresh(staging / "folder"), n, params.size_bytes,
                                      params.encoding),
    }
    # Distinct bytes in each batch: the same bytes twice on one flow would wait as duplicates.
    for k, mode in enumerate(("batched", "folder"), start=1):
        for i, path in enumerate(batches[mode]):
            path.write_bytes(payload.csv_bytes(params.size_bytes, params.encoding,
                                               (k * n + i) * 31 + 7, payload.row_pool()))
    manual = _manual_loop(batches["single"], work_dir / "manual")
    floor = _transfer_work(batches["single"], config, work_dir / "floor")
    os.sync()
    tachiai = [sys.executable, "-m", "gateway.cli"]
    env = machine.installed_env(work_dir)
    # Fill the bytecode cache outside the measured spans, as installing the package does.
    subprocess.run([*tachiai, "--help"], env=env, capture_output=True, check=False)
    key = home / "demo" / "keys" / WITNESS
    db = home / "state" / "tachiai.db"
    log_path = work_dir / "daemon.log"
    with open(log_path, "wb") as log:
        daemon = subprocess.Popen([*tachiai, "run", "--config", str(config)], stdout=log,
                                  stderr=subprocess.STDOUT, env=env)
    try:
        _wait(lambda: b"tachiai is running" in log_path.read_bytes() or daemon.poll() is not None,
              "the daemon to start")
        if daemon.poll() is not None:
            raise BenchError(f"the daemon exited {daemon.returncode}: "
                             + log_path.read_text(errors="replace")[-2000:])
        spans = {}
        for mode, paths in batches.items():
            _written_before(paths, settle_seconds)
            spans[mode] = _one_batch(mode, paths, outbox, db, daemon.pid,
                                     [*tachiai, "approve"], key, config, env,
                                     home / "state" / "approvals")
    finally:
        machine.stop_daemon(daemon)
    group = f"whole path, {n} × {params.size_bytes / (1 << 20):g} MiB {params.encoding} CSV"
    figures = [
        Figure("manual.files_per_s", "manual loop: sha256sum + 7zz AES-256 ZIP + mv",
               rate(n, manual[0]), "files/s", group),
        Figure("manual.cpu_ms_per_file", "manual loop: CPU per file", manual[1] / n * 1000,
               "ms CPU", group),
        Figure("manual.archive_kib", "manual loop: archive size per file", manual[2] / n / 1024,
               "KiB", group),
        Figure("sealed_kib", "tachiai: sealed size per file",
               _sealed_bytes(db) / (n * len(batches)) / 1024, "KiB", group),
        Figure("floor.cpu_ms_per_file", "a transfer's own work (hash, check, AES ZIP, hash) "
               "in one thread: CPU per file", floor / n * 1000, "ms CPU", group),
    ]
    labels = {"single": "one `tachiai approve ID --key` per file",
              "batched": "one `tachiai approve ID… --key` for all",
              "folder": "one `ssh-keygen -Y sign` per file (approvals folder)"}
    witness = {"folder": "  ssh-keygen (the witness) CPU per file"}
    for mode, (seconds, daemon_cpu, cli_cpu, checks_cpu) in spans.items():
        figures += [
            Figure(f"{mode}.files_per_s", f"tachiai, {labels[mode]}", rate(n, seconds),
                   "files/s", group),
            Figure(f"{mode}.vs_manual", "  ÷ the manual loop's files/s",
                   manual[0] / seconds, "×", group),
            Figure(f"{mode}.daemon_cpu_ms_per_file", "  daemon CPU per file",
                   daemon_cpu / n * 1000, "ms CPU", group),
            Figure(f"{mode}.checks_cpu_ms_per_file", "    of which its check processes",
                   checks_cpu / n * 1000, "ms CPU", group),
            Figure(f"{mode}.daemon_cpu_vs_floor", "    ÷ a transfer's own work",
                   daemon_cpu / floor if floor > 0 else 0.0, "×", group),
            Figure(f"{mode}.approve_cpu_ms_per_file",
                   witness.get(mode, "  approve command CPU per file"),
                   cli_cpu / n * 1000, "ms CPU", group),
        ]
    return Result(
        name=NAME,
        parameters={"files": n, "size_bytes": params.size_bytes, "encoding": params.encoding,
                    "check_processes": check_processes,
                    "settle_seconds": settle_seconds},
        figures=tuple(figures),
        notes=(
            "tachiai's span runs from the first file renamed into the outbox to the last "
            "delivered, through the witness's approve command(s); its seals are fsynced, its "
            "state and ledger durable; the manual loop syncs nothing",
            "the files were written before the run and are renamed into the outbox, as a "
            "careful sender does: each was last written longer ago than the demo's settle time "
            f"({settle_seconds:g} s), whose clock starts at a file's last write, so each is "
            "taken in when it appears; a file written into the outbox in place waits the settle "
            "time after its last write",
            "in every mode the witness starts once the whole batch awaits approval; with the "
            "approvals folder its ssh-keygen then signs each published statement in turn, and "
            "the daemon's watch on the folder takes each signature as it arrives",
            "`tachiai approve ID --key` (one per file) and `tachiai approve ID… --key` (one for "
            "all) go the same way once the statements are published: the command signs them "
            "with ssh-keygen (one run for all), hands each signature to the running daemon and "
            "waits for its verdict (gateway.outbound.handover); its CPU is the command's start "
            "and ssh-keygen's, the approvals' is in the daemon's",
            f"the daemon checks content in {check_processes} process(es) of its own "
            "([gateway] check_processes; 0: in its worker threads); its CPU counts theirs",
            "the manual loop seals with 7zz's default (deflate -mx=5), the gateway with zlib's "
            f"deflate level {SEAL_LEVEL} (the demo's [sealing] has 6), which makes archives of "
            "about the same size (both printed): the same compression work on both sides",
            "a transfer's own work (bench.ceiling.transfer_work) is what no gateway can skip, "
            "done on the same files in this process: what the daemon spends beyond it is its "
            "bookkeeping (state, ledger, fsyncs, dispatch)",
        ),
    )


def _one_batch(mode: str, paths: Sequence[Path], outbox: Path, db: Path, daemon_pid: int,
               approve: list[str], key: Path, config: Path, env: dict[str, str],
               folder: Path) -> tuple[float, float, float, float]:
    """(seconds from drop to the last delivery, daemon CPU seconds, the witness's CPU seconds:
    approve commands, or ssh-keygen into the approvals `folder`; the part of the daemon's CPU
    spent in its check processes)."""
    before = _delivered(db)
    cpu0, checks0 = _tree_cpu(daemon_pid)
    children0 = _children_cpu()
    started = time.perf_counter()
    for path in paths:
        os.replace(path, outbox / path.name)
    waiting = _wait(lambda: _awaiting(db, len(paths)), f"{mode}: files awaiting approval")
    if mode == "folder":
        commands = [["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", "tachiai-approval",
                     str(_wait(lambda t=t: (folder / t).exists() and folder / t,
                               f"the statement of {t}"))] for t in waiting]
    elif mode == "single":
        commands = [[*approve, t, "--key", str(key), "--config", str(config)] for t in waiting]
    else:
        commands = [[*approve, *waiting, "--key", str(key), "--config", str(config)]]
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(command[2:4])}… exited {done.returncode}: "
                             f"{done.stderr.strip()[-500:]}")
    _wait(lambda: _delivered(db) >= before + len(paths) or None, f"{mode}: files delivered")
    seconds = time.perf_counter() - started
    cpu, checks = _tree_cpu(daemon_pid)
    return seconds, cpu - cpu0, _children_cpu() - children0, checks - checks0


def _written_before(paths: Sequence[Path], seconds: float) -> None:
    """Wait (outside the measured span) until every file was last written at least `seconds`
    ago, as the notes say: files a sender wrote earlier, then renames into the outbox."""
    youngest = min(time.time() - path.stat().st_mtime for path in paths)
    if youngest < seconds:
        time.sleep(seconds - youngest)


def _transfer_work(paths: Sequence[Path], config: Path, scratch: Path) -> float:
    """CPU seconds of a transfer's own work on copies of `paths`, under the demo's flow."""
    settings = load_settings(config)
    agreement = load_agreements(settings.agreements,
                                settings.config_path.parent)[bootstrap.DEMO_AGREEMENT]
    flow = agreement.flow(bootstrap.DEMO_FLOW)
    try:
        return ceiling.transfer_work(paths, scratch, agreement, flow, dt.date.today(),
                                     settings.compression_level)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _manual_loop(paths: Sequence[Path], work: Path) -> tuple[float, float, int]:
    """(seconds, CPU seconds, bytes of the archives) of the operator's loop over copies of
    `paths`."""
    src, scratch, dest = _fresh(work / "src"), _fresh(work / "scratch"), _fresh(work / "dest")
    for path in paths:
        shutil.copyfile(path, src / path.name)
    os.sync()
    env = {**os.environ, "SRC": str(src), "WORK": str(scratch), "DEST": str(dest),
           "PASSWORD": _PASSWORD}
    children0 = _children_cpu()
    started = time.perf_counter()
    subprocess.run(["bash", "-c", MANUAL_LOOP], env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    cpu = _children_cpu() - children0
    archives = list(dest.iterdir())
    if len(archives) != len(paths):
        raise BenchError("the manual loop did not seal every file")
    size = sum(a.stat().st_size for a in archives)
    shutil.rmtree(work)
    return seconds, cpu, size


def _awaiting(db: Path, count: int) -> list[str] | None:
    ids = [r[0] for r in _query(db, "SELECT id FROM transfers WHERE state = 'awaiting_approval' "
                                    "ORDER BY created_ns")]
    bad = _query(db, "SELECT file_name, state, reasons FROM transfers "
                     "WHERE state IN ('rejected', 'failed')")
    if bad:
        raise BenchError(f"{bad[0][0]}: {bad[0][1]} {bad[0][2]}")
    return ids if len(ids) >= count else None


def _sealed_bytes(db: Path) -> int:
    """The bytes of every sealed file the gateway delivered."""
    rows = _query(db, "SELECT sum(sealed_size) FROM transfers WHERE state IN ('delivered', "
                      "'acknowledged')")
    return int(rows[0][0] or 0) if rows else 0


def _delivered(db: Path) -> int:
    rows = _query(db, "SELECT count(*) FROM transfers WHERE state IN ('delivered', "
                      "'acknowledged')")
    return int(rows[0][0]) if rows else 0


def _query(db: Path, sql: str) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        try:
            return list(conn.execute(sql))
        except sqlite3.OperationalError:  # not created yet
            return []


def _wait(probe: Callable[[], _T | None], what: str) -> _T:
    deadline = time.monotonic() + _TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.02)
    raise BenchError(f"timed out after {_TIMEOUT_SECONDS:.0f} s waiting for {what}")


def _tree_cpu(pid: int) -> tuple[float, float]:
    """User + system CPU seconds of a running process and of its descendants (the daemon's
    check processes, children of its forkserver, with what their ended children used), from
    /proc. The tools the process itself ran and waited for (ssh-keygen) are not counted, as
    before the check processes were. Also the part of its descendants alone."""
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
            stats[int(entry.name)] = fields
    tree, todo = set(), [pid]
    while todo:
        here = todo.pop()
        tree.add(here)
        todo.extend(child for child, parent in parents.items() if parent == here)
    own = descendants = 0
    for member in tree & stats.keys():
        fields = stats[member]
        if member == pid:
            own = int(fields[11]) + int(fields[12])
        else:
            descendants += sum(int(f) for f in fields[11:15])
    return (own + descendants) / _CLK_TCK, descendants / _CLK_TCK


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _fresh(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder
