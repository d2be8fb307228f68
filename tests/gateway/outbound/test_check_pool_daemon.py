"""The check processes of a real daemon (gateway.outbound.check_pool): a check process killed
(SIGKILL) while it checks a large file is replaced, the daemon keeps running and the transfer
is checked again and awaits approval, with the check under way shown by `status` first; the
check processes end with the daemon, stopped or killed."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from gateway import progress
from tests.conftest import GOOD_ROWS, Demo, csv_bytes, running, wait_for

pytestmark = pytest.mark.slow


def _set_gateway(demo: Demo, **values: object) -> None:
    text = demo.config.read_text(encoding="utf-8")
    lines = "".join(f"{k} = {v}\n" for k, v in values.items())
    demo.config.write_text(text.replace("[gateway]\n", f"[gateway]\n{lines}", 1),
                           encoding="utf-8")


def _checkers(demo: Demo) -> list[int]:
    """The check processes the daemon's log names: at its start, then each replacement."""
    text = demo.daemon_log()
    started = re.search(r"content checks run in \d+ process\(es\): ([\d, ]+)", text)
    assert started, text[-3000:]
    pids = [int(p) for p in started.group(1).split(",")]
    for dead, fresh in re.findall(r"a check process ended \(pid (\d+), exit [^)]*\); pid (\d+) "
                                  r"took its place", text):
        pids = [int(fresh) if p == int(dead) else p for p in pids]
    return pids


def _forkserver(daemon_pid: int) -> int:
    """The daemon's forkserver: the parent of its check processes."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == daemon_pid and b"forkserver" in cmdline:
                return int(entry.name)
    raise AssertionError("the daemon has no forkserver")


def test_a_check_process_killed_mid_check_is_replaced_and_the_file_is_checked(
        demo: Demo) -> None:
    _set_gateway(demo, check_processes=1)
    daemon = demo.start()
    wait_for(lambda: "content checks run in" in demo.daemon_log(), 120, "the check processes")
    [checker] = _checkers(demo)
    assert checker != daemon.pid and running(checker)
    # Large enough that its check lasts well beyond the first progress samples; wide rows, so
    # it stays under the row limit (content.too-many-rows).
    wide = [GOOD_ROWS[0].replace("1-1,", "1-1" + "テスト" * 50 + ","),
            GOOD_ROWS[1].replace("2-2,", "2-2" + "サンプル" * 40 + ",")]
    pair = len(csv_bytes(wide)) - len(csv_bytes([]))
    data = csv_bytes(wide * (48 * progress.LARGE // pair))
    demo.drop("status-change-2026-10.csv", data)
    state = demo.root / "state"

    def checking() -> progress.Record | None:
        return next((r for r in progress.live(state) if r.step == "check" and r.done > 0), None)

    seen = wait_for(checking, 300, "the check's progress")
    os.kill(checker, signal.SIGSTOP)  # held mid-check, so what status shows cannot move on
    shown = [r for r in demo.json("status")["working_on"] if r["step"] == "check"]
    assert len(shown) == 1 and 0 < shown[0]["done"] < shown[0]["total"] == len(data), shown
    assert shown[0]["transfer"] == seen.transfer and shown[0]["pid"] == daemon.pid
    os.kill(checker, signal.SIGKILL)
    wait_for(lambda: "a check process ended" in demo.daemon_log(), 120, "the pool to see it")
    [waiting] = demo.wait_state("awaiting_approval", timeout=300)
    assert daemon.poll() is None, demo.daemon_log()[-3000:]
    [fresh] = _checkers(demo)
    assert fresh != checker and running(fresh) and not running(checker)
    assert waiting["id"] == seen.transfer
    log = demo.daemon_log()
    assert f"the check process {checker} ended before it answered" in log
    assert "will be tried again" in log  # the workers' internal-error path
    shown_after = demo.show(waiting["id"])
    assert shown_after["state"] == "awaiting_approval"
    assert demo.stop() == 0


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_the_check_processes_end_with_the_daemon(demo: Demo, how: str) -> None:
    _set_gateway(demo, check_processes=2)
    daemon = demo.start()
    wait_for(lambda: "content checks run in" in demo.daemon_log(), 120, "the check processes")
    checkers = _checkers(demo)
    server = _forkserver(daemon.pid)
    assert len(checkers) == 2 and all(running(p) for p in [*checkers, server])
    if how == "stopped":
        assert demo.stop() == 0
    else:
        daemon.kill()
        daemon.wait(60)
    wait_for(lambda: not any(running(p) for p in [*checkers, server]), 120,
             "the check processes and their forkserver to end")
