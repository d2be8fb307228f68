"""Shared fixtures: a demo gateway in a temporary folder, its real CLI and its real daemon.

Everything here runs the real programs: `tachiai` as a subprocess, OpenSSH's `ssh-keygen`,
`7zz`. Nothing is mocked.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Property tests judge what an example gives, not how fast: on a busy CI core one example may
# take longer than Hypothesis's default deadline (200 ms), then run fast again ("Unreliable test
# timings"). Speed is measured in bench/, never asserted in tests.
settings.register_profile("tachiai", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("tachiai")

# The PostgreSQL server fixtures (`postgres`, `pg_url`), for every test package.
pytest_plugins = ("tests.pg",)

# English messages for this process and every `tachiai` it starts, whatever the machine's locale:
# tests that read the words assert the English ones; tests/gateway/test_i18n.py chooses others.
os.environ["LANGUAGE"] = "C"

ROOT = Path(__file__).resolve().parent.parent
AGREEMENT = "isa-nhi-status-loss"
FLOW = "monthly"
HEADER = "氏名(英字),住居地(地方公共団体コード),住居地,性別,生年月日,在留資格変更年月日"
COLUMNS = tuple(HEADER.split(","))  # the demo dataset's columns (情報項目), in order
GOOD_ROWS = [
    "TEST TARO,131041,東京都新宿区サンプル町1-1,1,1990/04/01,令和8年10月1日",
    "SAMPLE HANAKO,141003,神奈川県横浜市テスト区2-2,女,1985-12-24,R8.10.15",
]


def tachiai_command() -> list[str]:
    script = Path(sys.executable).parent / "tachiai"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


def has_japanese(text: str) -> bool:
    """Whether `text` holds kana or kanji (a message printed in Japanese)."""
    return any("\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" for c in text)


def shows_value(text: str, value: str) -> bool:
    """Whether `text` shows `value` as a value of its own, not as a run inside a longer word or
    number: a municipality code such as 271004 turns up by chance inside a nanosecond time, a
    hash or a random id, and that is no leak."""
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])", text) is not None


def csv_bytes(rows: list[str], header: str = HEADER, encoding: str = "cp932") -> bytes:
    return ("\r\n".join([header, *rows]) + "\r\n").encode(encoding)


def sealed_files(folder: Path) -> list[Path]:
    """What a recipient's inbox holds besides the manifests (送付票) beside each file."""
    return sorted(p for p in folder.iterdir() if not p.name.endswith(".manifest.json"))


def running(pid: int) -> bool:
    """Whether process `pid` is alive and not a zombie (a child of the daemon's forkserver may
    wait a moment to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Demo:
    """A demo gateway folder and ways to drive it."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    daemon: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def config(self) -> Path:
        return self.root / "tachiai.toml"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox" / AGREEMENT / FLOW

    @property
    def inbox(self) -> Path:
        return self.root / "demo" / "recipients" / "nhi-central" / "inbox"

    @property
    def passwords(self) -> Path:
        return self.root / "demo" / "recipients" / "nhi-central" / "passwords"

    @property
    def spool(self) -> Path:
        return self.root / "state" / "spool"

    @property
    def state_db(self) -> Path:
        return self.root / "state" / "tachiai.db"

    @property
    def ledger(self) -> Path:
        return self.root / "state" / "ledger.db"

    def key(self, name: str) -> Path:
        return self.root / "demo" / "keys" / name

    def cli(self, *args: str, check: bool = False, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*tachiai_command(), *args, "--config", str(self.config)],
            capture_output=True, text=True, env={**os.environ, **self.env, **(env or {})},
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"tachiai {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json", check=True).stdout)

    def transfers(self, state: str | None = None) -> list[dict[str, Any]]:
        # Every row: the human list shows the latest 50 by default.
        args = ["transfers", "list", "--all"] + (["--state", state] if state else [])
        return list(self.json(*args))

    def show(self, transfer_id: str) -> dict[str, Any]:
        return dict(self.json("transfers", "show", transfer_id))

    def drop(self, name: str, data: bytes) -> Path:
        """Write a file beside the outbox, then rename it in (how a careful sender drops)."""
        staging = self.root / "staging"
        staging.mkdir(exist_ok=True)
        tmp = staging / name
        tmp.write_bytes(data)
        target = self.outbox / name
        os.replace(tmp, target)
        return target

    def wait_state(self, state: str, count: int = 1, timeout: float = 60.0
                   ) -> list[dict[str, Any]]:
        """Wait for `count` transfers in `state`, then for their events to reach the ledger.

        A state change commits with its event in the state DB's outbox; the daemon moves the
        event into the ledger just after. A test that reads the audit log right after seeing
        the state must wait for that move, or it races the daemon.
        """
        found = list(wait_for(lambda: (lambda ts: ts if len(ts) >= count else None)(
            self.transfers(state)), timeout, f"{count} transfer(s) in state {state}"))
        self.wait_ledger(timeout)
        return found

    def wait_ledger(self, timeout: float = 60.0) -> None:
        """Wait until no event waits in the state DB's outbox (all are in the ledger)."""
        def settled() -> bool:
            with contextlib.closing(sqlite3.connect(f"file:{self.state_db}?mode=ro", uri=True,
                                                    timeout=30)) as db:
                return db.execute("SELECT count(*) FROM pending_events").fetchone()[0] == 0
        wait_for(settled, timeout, "the daemon to move pending events into the ledger")

    def start(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        assert self.daemon is None or self.daemon.poll() is not None
        self.log_path = self.root / f"daemon-{time.monotonic_ns()}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.daemon = subprocess.Popen(
            [*tachiai_command(), "run", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **self.env, **(env or {})},
        )
        wait_for(lambda: b"tachiai is running" in self.log_path.read_bytes()  # type: ignore
                 or self.daemon.poll() is not None, 120, "the daemon to start")  # type: ignore
        return self.daemon

    def stop(self) -> int | None:
        if self.daemon is None:
            return None
        if self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                # Ample: a stop lets running steps finish (workers.STOP_WAIT_SECONDS) and then
                # stops the check processes, on a machine that may be busy.
                self.daemon.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.daemon.send_signal(signal.SIGUSR1)  # every thread's stack, into the log
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.daemon.wait(timeout=5)
                self.daemon.kill()
                self.daemon.wait()
                raise AssertionError("the daemon did not stop on SIGTERM; its log ends:\n"
                                     + self.daemon_log()[-6000:]) from None
        code = self.daemon.returncode
        self.daemon = None
        return code

    def daemon_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def sign_with_ssh_keygen(self, message: bytes, key: str, namespace: str = "tachiai-approval"
                             ) -> Path:
        """A signature made by OpenSSH's own ssh-keygen -Y sign."""
        folder = self.root / "signatures"
        folder.mkdir(exist_ok=True)
        stmt = folder / f"statement-{time.monotonic_ns()}"
        stmt.write_bytes(message)
        subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-n", namespace, "-f",
                        str(self.key(key)), str(stmt)], check=True, capture_output=True)
        return Path(f"{stmt}.sig")


def fast_config(config: Path, **intake: object) -> None:
    """Shorten the daemon's timers for tests (settle, scan, poll), and apply overrides."""
    text = config.read_text(encoding="utf-8")
    values = {"settle_seconds": 0.4, "scan_interval_seconds": 0.5, "poll_seconds": 0.05, **intake}
    for key, value in values.items():
        line = f"{key} = {value}"
        text, n = re.subn(rf"(?m)^{key} = .*$", line, text)
        if n == 0:
            text = text.replace("[intake]\n", f"[intake]\n{line}\n")
    config.write_text(text, encoding="utf-8")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    root = tmp_path / "gw"
    subprocess.run([*tachiai_command(), "init", str(root), "--demo"], check=True,
                   capture_output=True)
    fast_config(root / "tachiai.toml")
    d = Demo(root)
    yield d
    d.stop()


needs_7zz = pytest.mark.skipif(shutil.which("7zz") is None, reason="7zz is not installed "
                               "(scripts/test installs it)")


def read_terminal(main: int) -> bytes:
    """Everything written to a pseudo-terminal's other side, once that side is closed."""
    shown = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the other end is closed: all was read
            return shown
        if not chunk:
            return shown
        shown += chunk
