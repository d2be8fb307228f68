"""The CLI's start-up: CPU (user + system) of one `tachiai` command, per command, beside an
interpreter that does nothing (`python -c pass`) measured in the same run as the floor.

Each figure is the minimum of N runs after one warm-up run (the machine is shared, and the
minimum is the cost without interference). The children compile bytecode once into a cache in
the work folder, as an installed package has it, even where PYTHONDONTWRITEBYTECODE is set:
otherwise every run would compile the gateway's sources again and measure that. A command runs
against a fresh demo gateway up to its work: `approve` and `transfers show` of an unknown id, so
they load everything approving and showing need; then `approve` of transfers that wait for it,
the whole approval (statement, signature, the rows and events, the ledger append), of one and of
a batch of BATCH, each run on transfers of its own; then `approve` of one transfer with the
daemon running, which signs the published statement with ssh-keygen and hands it to the daemon
(gateway.outbound.handover): the command's CPU and ssh-keygen's, not the daemon's.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import machine
from bench.results import BenchError, Figure, Params, Result
from gateway import bootstrap
from gateway.config.settings import load_settings
from gateway.runtime import Runtime, event
from gateway.state import clock
from gateway.state.rows import Transfer

NAME = "startup"
RUNS = 5
BATCH = 10

#: (figure key, label, command line after `tachiai`); {config} and {key} are filled in.
COMMANDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("help", "tachiai --help", ("--help",)),
    ("approve", "tachiai approve ID --key KEY",
     ("approve", "t-000000000000", "--key", "{key}", "--config", "{config}")),
    ("transfers_list", "tachiai transfers list", ("transfers", "list", "--config", "{config}")),
    ("transfers_show", "tachiai transfers show ID",
     ("transfers", "show", "t-000000000000", "--config", "{config}")),
    ("audit_verify", "tachiai audit verify", ("audit", "verify", "--config", "{config}")),
    ("audit_prove", "tachiai audit prove SEQ", ("audit", "prove", "0", "--config", "{config}")),
)


def run(params: Params, work_dir: Path) -> Result:
    """Measure each command's start-up CPU in `work_dir` (which must be empty or absent)."""
    home = work_dir / "tachiai"
    bootstrap.init(home, demo=True)
    fill = {"config": str(home / "tachiai.toml"), "key": str(home / "demo" / "keys" / "suzuki")}
    tachiai = [sys.executable, "-m", "gateway.cli"]
    env = machine.installed_env(work_dir)
    floor = cpu_seconds([sys.executable, "-c", "pass"], env)
    figures = [Figure("startup.python_floor_ms", "python -c pass (the floor)", floor * 1000,
                      "ms CPU", NAME)]
    for key, label, args in COMMANDS:
        command = [*tachiai, *(a.format(**fill) for a in args)]
        figures.append(Figure(f"startup.{key}_ms", label, cpu_seconds(command, env) * 1000,
                              "ms CPU", NAME))
    for key, label, count in (("approve_waiting", "tachiai approve ID --key KEY (approved)", 1),
                              ("approve_batch", f"tachiai approve ID×{BATCH} --key KEY "
                               "(approved)", BATCH)):
        runs = [[*tachiai, "approve", *waiting(home / "tachiai.toml", count), "--key",
                 fill["key"], "--config", fill["config"]] for _ in range(RUNS + 1)]
        figures.append(Figure(f"startup.{key}_ms", label,
                              least_cpu(runs, env, check=True) * 1000,
                              "ms CPU", NAME))
    figures.append(Figure("startup.approve_daemon_ms",
                          "tachiai approve ID --key KEY (handed to the running daemon)",
                          through_daemon(home, tachiai, fill, env) * 1000, "ms CPU", NAME))
    return Result(
        name=NAME,
        parameters={"runs": RUNS},
        figures=tuple(figures),
        notes=(f"CPU (user + system) of the whole process, the minimum of {RUNS} runs after a "
               "warm-up, with bytecode cached",),
    )


def cpu_seconds(command: list[str], env: dict[str, str], runs: int = RUNS) -> float:
    """The least CPU time (user + system, seconds) of `runs` runs of `command`, after one
    run that is not counted (it fills the bytecode cache)."""
    return least_cpu([command] * (runs + 1), env)


def least_cpu(commands: list[list[str]], env: dict[str, str], *, check: bool = False) -> float:
    """The least CPU time (user + system, seconds) of the commands but the first (a warm-up
    that fills the bytecode cache), run one after the other.

    Raises:
        BenchError: with `check`, a command that did not exit 0.
    """
    best = float("inf")
    for i, command in enumerate(commands):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env)
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0  # reaped here: Popen must not wait for it again
        if check and os.waitstatus_to_exitcode(status) != 0:
            raise BenchError(f"{' '.join(command[2:4])} … exited "
                             f"{os.waitstatus_to_exitcode(status)}")
        if i > 0:
            best = min(best, usage.ru_utime + usage.ru_stime)
    return best


def through_daemon(home: Path, tachiai: list[str], fill: dict[str, str],
                   env: dict[str, str]) -> float:
    """The least CPU of `approve ID --key KEY` while the daemon runs and has published each
    transfer's statement: one run per transfer, after a warm-up.

    Raises:
        BenchError: the daemon does not start, a statement is not published, or an approval
            does not exit 0.
    """
    log_path = home / "startup-daemon.log"
    with open(log_path, "wb") as log:
        daemon = subprocess.Popen([*tachiai, "run", "--config", fill["config"]], stdout=log,
                                  stderr=subprocess.STDOUT, env=env)
    try:
        _until(lambda: b"tachiai is running" in log_path.read_bytes()
               or daemon.poll() is not None, "the daemon to start")
        if daemon.poll() is not None:
            raise BenchError(f"the daemon exited {daemon.returncode}")
        ids = waiting(Path(fill["config"]), RUNS + 1)
        folder = load_settings(Path(fill["config"])).approvals_folder
        for ident in ids:
            _until(lambda ident=ident: (folder / ident).exists(), f"the statement of {ident}")
        return least_cpu([[*tachiai, "approve", ident, "--key", fill["key"], "--config",
                           fill["config"]] for ident in ids], env, check=True)
    finally:
        machine.stop_daemon(daemon)


def _until(probe: Callable[[], object], what: str, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not probe():
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.02)


def waiting(config: Path, count: int) -> list[str]:
    """`count` new transfers awaiting approval on the demo's flow, as its check leaves them
    (the approval reads their rows and statement, never their files)."""
    rt = Runtime.open(load_settings(config))
    agreement, flow = rt.our_flows()[0]
    ids = []
    for _ in range(count):
        now = clock.now_ns()
        t = Transfer(id="t-" + secrets.token_hex(6), agreement=agreement.id, flow=flow.id,
                     recipient=flow.recipient, state="awaiting_approval", file_name="bench.csv",
                     source_path=f"/bench/{now}.csv", created_ns=now, updated_ns=now,
                     provider=flow.provider, sender=None, size=1 << 20,
                     sha256=secrets.token_hex(32), encoding="cp932", rows=1000)
        rt.store.create(t, [event("transfer.checked", t)])
        ids.append(t.id)
    rt.flush()
    return ids
