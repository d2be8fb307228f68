"""kill -9 at every step, then a restart: nothing lost, nothing delivered twice.

The daemon is killed with SIGKILL at named points (gateway.faults) and, separately, at random
moments while files flow; after a restart every transfer finishes from its last recorded state.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time

import pytest

from gateway.faults import ENV, POINTS
from tests.conftest import GOOD_ROWS, Demo, csv_bytes, needs_7zz, sealed_files, wait_for

pytestmark = pytest.mark.slow


def _killed(demo: Demo) -> None:
    assert demo.daemon is not None
    code = demo.daemon.wait(timeout=120)
    assert code == -signal.SIGKILL, f"expected a SIGKILL death, got {code}"
    demo.daemon = None


def _approve_all(demo: Demo) -> None:
    for transfer in demo.transfers("awaiting_approval"):
        result = demo.cli("approve", str(transfer["id"]), "--key", str(demo.key("suzuki")))
        assert result.returncode == 0, result.stderr


def _check_exactly_once(demo: Demo, data: bytes, tmp: object) -> None:
    (done,) = demo.wait_state("delivered", timeout=120)
    assert len(demo.transfers()) == 1, "one drop, one transfer"
    assert len(sealed_files(demo.inbox)) == 1, "exactly one delivered file"
    assert len(list(demo.passwords.iterdir())) == 1
    from pathlib import Path

    out = Path(str(tmp)) / "opened"
    password = Path(done["password_path"]).read_text().strip()
    subprocess.run(["7zz", "x", "-y", f"-o{out}", f"-p{password}", done["delivered_path"]],
                   check=True, capture_output=True)
    assert (out / "file.csv").read_bytes() == data
    # The spool's copy of the password goes once delivered, also when the daemon was killed
    # between the delivered move and the erasure (the restart erases it).
    spooled = demo.spool / str(done["id"]) / "password"
    wait_for(lambda: not spooled.exists(), 60, "the spool's password to be erased")
    assert demo.cli("audit", "verify").returncode == 0
    kinds = demo.cli("audit", "log").stdout
    assert kinds.count("transfer.delivered") == 1
    assert kinds.count("transfer.sealed") == 1


@needs_7zz
@pytest.mark.parametrize("point", POINTS)
def test_kill_at_each_step_then_restart(demo: Demo, point: str, tmp_path: object) -> None:
    data = csv_bytes(GOOD_ROWS)
    before_approval = point in ("after-intent", "after-spool-move")
    if before_approval:
        demo.start(env={ENV: point})
        demo.drop("file.csv", data)
        _killed(demo)
        demo.start()
        demo.wait_state("awaiting_approval")
        _approve_all(demo)
    else:
        demo.start()
        demo.drop("file.csv", data)
        demo.wait_state("awaiting_approval")
        demo.stop()
        _approve_all(demo)
        demo.start(env={ENV: point})
        _killed(demo)
        demo.start()
    _check_exactly_once(demo, data, tmp_path)
    assert demo.stop() == 0


def test_random_kills_while_files_flow(demo: Demo) -> None:
    rng = random.Random(20261122)
    files = {f"f{i:02d}.csv": csv_bytes([*GOOD_ROWS] * (i + 1)) for i in range(12)}
    pending = list(files.items())
    demo.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for _ in range(rng.randint(1, 3)):
            if pending:
                name, data = pending.pop()
                demo.drop(name, data)
        time.sleep(rng.uniform(0.0, 0.6))
        if demo.transfers("awaiting_approval"):
            _approve_all(demo)
        time.sleep(rng.uniform(0.0, 0.4))
        assert demo.daemon is not None
        demo.daemon.kill()
        demo.daemon.wait()
        demo.daemon = None
        demo.start()
        if not pending and len(demo.transfers("delivered")) == len(files):
            break
    while pending:  # a machine so busy that the kills ran out of time: the rest, unkilled
        demo.drop(*pending.pop())
    wait_for(lambda: (_approve_all(demo), len(demo.transfers("delivered")) == len(files))[1],
             300, "every file to be delivered")
    transfers = demo.transfers()
    assert sorted(t["file_name"] for t in transfers) == sorted(files)
    assert all(t["state"] == "delivered" for t in transfers)
    assert len(sealed_files(demo.inbox)) == len(files), "each file delivered exactly once"
    assert not [p for p in demo.outbox.iterdir()], "nothing left behind in the outbox"
    assert demo.cli("audit", "verify").returncode == 0
