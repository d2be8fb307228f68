"""Benchmark `workers`: the whole outbound path run by the daemon's lanes of worker threads
(gateway.workers) with 1, 2 and 4 workers per lane, on SQLite, N files each; and, given an
empty PostgreSQL database (`--postgres-url`), by two nodes sharing it.

The two nodes are two runtimes (each its own engine, node name and lanes of `[gateway] workers`
threads) in this one process, sharing the spool as nodes on one mount do; each is handed every
dropped file, as each node's watcher would see it, so the intake claims decide who takes it.

Each run starts from a fresh demo gateway: the files are taken in and checked by the intake
lane, approved with signatures made here (the witnesses' part, outside the timed span), then
sealed and delivered by the sealing and delivery lanes. Prints files/s beside the raw ceiling
of the same run and the single-worker figure. It measures; it never asserts a speed.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

from bench import ceiling, payload
from bench.results import BenchError, Figure, Params, Result, rate
from gateway import bootstrap
from gateway.config.settings import load_settings
from gateway.identity import sshsig
from gateway.identity.sshkeys import load_private_key
from gateway.outbound import approvals
from gateway.outbound.intake import Outbox
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime
from gateway.workers import Workers, intake_threads

NAME = "workers"
WITNESS = "suzuki"
WORKERS = (1, 2, 4)
_TIMEOUT_SECONDS = 3600.0  # a run that takes longer is broken, not slow


def run(params: Params, work_dir: Path) -> Result:
    """Run the benchmark in `work_dir` (empty or absent) and return its figures.

    Raises:
        BenchError: when a file is not delivered (the figures would measure something else).
    """
    figures: list[Figure] = []
    ceiling_s = 0.0
    single = 0.0
    for n in WORKERS:
        seconds, raw = _one_run(params, work_dir / f"w{n}", n)
        ceiling_s = max(ceiling_s, raw)  # the slowest (most loaded) ceiling seen: conservative
        files_per_s = rate(params.files, seconds)
        single = single or files_per_s
        group = f"{n} worker(s) per lane"
        figures += [
            Figure(f"w{n}.files_per_s", "whole path (intake → delivered)", files_per_s,
                   "files/s", group),
            Figure(f"w{n}.seconds", "wall time (approvals not timed)", seconds, "s", group),
            Figure(f"w{n}.vs_single", "÷ single-worker throughput", files_per_s / single, "×",
                   group),
        ]
    if params.postgres_url:
        seconds, raw = _one_run(params, work_dir / "pg", 2, nodes=2,
                                database_url=params.postgres_url)
        ceiling_s = max(ceiling_s, raw)
        files_per_s = rate(params.files, seconds)
        group = "2 nodes on PostgreSQL, 2 workers per lane each"
        figures += [
            Figure("pg2.files_per_s", "whole path (intake → delivered)", files_per_s,
                   "files/s", group),
            Figure("pg2.seconds", "wall time (approvals not timed)", seconds, "s", group),
            Figure("pg2.vs_single", "÷ single-worker throughput (SQLite)", files_per_s / single,
                   "×", group),
        ]
    raw_files_per_s = rate(params.files, ceiling_s)
    figures.append(Figure("ceiling.raw.files_per_s", "read + SHA-256 + AES-256-CTR",
                          raw_files_per_s, "files/s", "ceilings (same bytes, same run)"))
    processes = _check_processes(work_dir)
    return Result(
        name=NAME,
        parameters={"files": params.files, "size_bytes": params.size_bytes,
                    "encoding": params.encoding, "workers": list(WORKERS),
                    "database": "sqlite" + (", postgresql (2 nodes)" if params.postgres_url
                                            else "")},
        figures=tuple(figures),
        notes=(
            "each worker count runs on a fresh gateway; approvals are signed and stored "
            "between the intake and the sealing span and are not timed",
            f"the machine has {os.cpu_count()} CPU(s); more workers than CPUs only overlap I/O",
            f"each run checks content in the demo's {processes} check "
            "process(es) ([gateway] check_processes), whatever the workers per lane; the intake "
            "lane has at least one thread more than there are check processes "
            f"({intake_threads(1, processes)} with 1 worker: gateway.workers.intake_threads)",
            "two nodes run in one process here (one GIL, one machine's CPUs): a floor for "
            "two machines" if params.postgres_url else
            "PostgreSQL not measured (give --postgres-url an empty database)",
        ),
    )


def _one_run(params: Params, work_dir: Path, workers: int, *, nodes: int = 1,
             database_url: str = "") -> tuple[float, float]:
    """(seconds of intake + seal + deliver with `workers` per lane on each of `nodes`, seconds
    of the raw ceiling)."""
    home = work_dir / "tachiai"
    bootstrap.init(home, demo=True)
    base = dataclasses.replace(load_settings(home / "tachiai.toml"), workers=workers,
                               database_url=database_url)
    rts = [Runtime.open(dataclasses.replace(base, node_name=f"bench-{n}") if nodes > 1 else base)
           for n in range(nodes)]
    rt = rts[0]
    box = Outbox(bootstrap.DEMO_AGREEMENT, bootstrap.DEMO_FLOW,
                 base.outbox(bootstrap.DEMO_AGREEMENT, bootstrap.DEMO_FLOW))
    key = load_private_key(home / "demo" / "keys" / WITNESS)
    paths = payload.write_files(box.path, params.files, params.size_bytes, params.encoding)
    os.sync()
    raw = ceiling.read_hash_encrypt(paths)
    stopping, wake = threading.Event(), threading.Event()
    pools = [Workers(node, stopping, wake) for node in rts]
    for pool in pools:
        pool.start()
    try:
        started = time.perf_counter()
        for path in paths:
            for pool in pools:  # every node sees every dropped file
                pool.submit(box, path)
        _until(rt, pools, wake, State.AWAITING_APPROVAL, params.files)
        intake = time.perf_counter() - started
        for t in rt.store.list_transfers(State.AWAITING_APPROVAL):
            signature = sshsig.sign(approvals.statement(rt, t), key, approvals.APPROVAL_NAMESPACE)
            approvals.approve(rt, t.id, signature)
        started = time.perf_counter()
        _until(rt, pools, wake, State.DELIVERED, params.files)
        sealing = time.perf_counter() - started
        if len(rt.store.list_transfers()) != params.files:
            raise BenchError("a file was taken in twice: the figures would be wrong")
    finally:
        for pool in pools:
            pool.stop()
        for node in rts:
            node.store.engine.dispose()
    return intake + sealing, raw


def _until(rt: Runtime, pools: list[Workers], wake: threading.Event, state: State,
           count: int) -> None:
    """Dispatch, as the daemon's loop does, until `count` transfers are in `state`.

    Raises:
        BenchError: a file was rejected or failed, or the run took too long.
    """
    deadline = time.monotonic() + _TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for pool in pools:
            pool.dispatch()
        done = rt.store.list_transfers(state)
        if len(done) >= count:
            return
        lost = rt.store.list_transfers(State.REJECTED) + rt.store.list_transfers(State.FAILED)
        if lost:
            raise BenchError(f"{lost[0].file_name}: {lost[0].state} {lost[0].reasons}")
        wake.wait(0.05)
        wake.clear()
    raise BenchError(f"not every file reached {state.value} within {_TIMEOUT_SECONDS:.0f} s")


def _check_processes(work_dir: Path) -> int:
    """The check processes the runs' gateways had (the demo configuration's)."""
    return load_settings(work_dir / f"w{WORKERS[0]}" / "tachiai" / "tachiai.toml").check_processes
