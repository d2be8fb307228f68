"""One daemon per state directory: the lock refuses a second holder, and a killed holder's lock
is free again (the kernel drops the lock with the process); whether it is held is read without
taking it."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.errors import AlreadyRunning
from gateway.state import daemon_lock
from tests.conftest import Demo, wait_for

# A real process that takes the lock, says so, and waits to be killed.
_HOLDER = """
import sys, pathlib
from gateway.state import daemon_lock
lock = daemon_lock.acquire(pathlib.Path(sys.argv[1]))
print("locked", flush=True)
sys.stdin.read()
"""


def _holder(state: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(state)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
    return proc


def test_the_lock_is_exclusive_names_its_holder_and_is_free_after_release(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with daemon_lock.acquire(state) as lock:
        assert lock.path == state / "daemon.lock"
        assert lock.path.read_text() == f"{os.getpid()}\n"
        assert oct(lock.path.stat().st_mode & 0o777) == oct(0o600)
        with pytest.raises(AlreadyRunning) as refused:
            daemon_lock.acquire(state)
        assert f"PID {os.getpid()}" in str(refused.value)
        assert refused.value.exit_code == 75
        assert "systemctl status tachiai" in refused.value.diagnostics()
    again = daemon_lock.acquire(state)  # released on leaving the block
    again.release()
    again.release()  # idempotent
    assert (state / "daemon.lock").exists()  # never deleted: one inode for every daemon


def test_a_lock_held_by_another_process_refuses_and_is_free_after_kill_9(tmp_path: Path) -> None:
    state = tmp_path / "state"
    holder = _holder(state)
    try:
        with pytest.raises(AlreadyRunning, match=f"PID {holder.pid}"):
            daemon_lock.acquire(state)
        assert daemon_lock.held(state) is True
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert daemon_lock.held(state) is False
    assert (state / "daemon.lock").read_text() == f"{holder.pid}\n"  # stale text, free lock
    with daemon_lock.acquire(state):
        assert (state / "daemon.lock").read_text() == f"{os.getpid()}\n"


def test_a_child_process_never_inherits_the_lock(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with daemon_lock.acquire(state):
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, close_fds=False,
        )
        # Past exec (where close-on-exec applies): between fork and exec any child shares it.
        assert child.stdout is not None and child.stdout.readline() == "up\n"
    try:
        # The parent let go; a child still running (ssh-keygen, 7zz, age) must not hold it.
        daemon_lock.acquire(state).release()
    finally:
        child.kill()
        child.wait()


@pytest.mark.slow
def test_a_second_daemon_is_refused_and_a_killed_ones_lock_is_free(demo: Demo) -> None:
    first = demo.start()
    assert first.poll() is None, demo.daemon_log()
    second = demo.cli("run")
    assert second.returncode == 75, second.stderr
    assert f"PID {first.pid}" in second.stderr and "systemctl status tachiai" in second.stderr
    assert first.poll() is None  # the first one runs on, untouched

    first.send_signal(signal.SIGKILL)
    first.wait()
    log_before = demo.daemon_log()
    demo.daemon = None
    restarted = demo.start()
    assert restarted.poll() is None, demo.daemon_log()
    assert "tachiai is running" in demo.daemon_log() and demo.daemon_log() != log_before
    wait_for(lambda: (demo.root / "state" / "daemon.lock").read_text() == f"{restarted.pid}\n",
             10, "the new daemon's PID in the lock file")


_EARLIER_RELEASE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_daemon_of_an_earlier_release_holding_its_flock_is_refused_and_refuses(
    tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    earlier = subprocess.Popen([sys.executable, "-c", _EARLIER_RELEASE,
                                str(state / "daemon.lock")], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert earlier.stdout is not None and earlier.stdout.readline() == "locked\n"
        with pytest.raises(AlreadyRunning):
            daemon_lock.acquire(state)
    finally:
        earlier.kill()
        earlier.wait()
    with daemon_lock.acquire(state):  # and the earlier release's daemon meets this one's flock
        fd = os.open(state / "daemon.lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def test_the_table_of_locks_tells_a_held_lock_where_the_file_cannot_be_opened(
    tmp_path: Path
) -> None:
    state = tmp_path / "state"
    assert daemon_lock.listed(state / "daemon.lock") is False
    with daemon_lock.acquire(state):
        assert daemon_lock.listed(state / "daemon.lock") is True
    assert daemon_lock.listed(state / "daemon.lock") is False
