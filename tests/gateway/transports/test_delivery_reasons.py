"""Why a delivery failed is part of the transfer: `transfers show --json` and `list --json` name
the rule, the words and the next step of the last failed attempt, and the next step matches the
state (queued and retried, or `failed` until `tachiai transfers retry ID`).

Through the real CLI and daemon: a changed host key at a real sshd, and a handshake that times
out at a server on 127.0.0.1 that accepts connections and never says a word.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import GOOD_ROWS, Demo, csv_bytes
from tests.gateway.conftest import needs_sshd
from tests.gateway.transports.servers import Sshd, ssh_keygen

pytestmark = pytest.mark.slow


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers (a hung SSH server)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)  # kept open, never written to

    def close(self) -> None:
        self.closed.set()
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def _use_sftp(demo: Demo, *, port: int, user: str, key: str, known_hosts: str, inbox: Path,
              attempts: int, timeout: float = 30.0) -> None:
    text = demo.config.read_text(encoding="utf-8")
    start = text.index("[recipients.nhi-central]")
    demo.config.write_text(
        text[:start]
        + f"""[recipients.nhi-central]
transport = "sftp"
host = "127.0.0.1"
port = {port}
user = "{user}"
key_file = "{key}"
known_hosts = "{known_hosts}"
remote_dir = "{inbox}"
attempts = {attempts}
timeout_seconds = {timeout}
password_channel = {{ kind = "retrieval" }}
""",
        encoding="utf-8",
    )


def _approved(demo: Demo) -> str:
    demo.drop("status-change-2026-10.csv", csv_bytes(GOOD_ROWS))
    (transfer,) = demo.wait_state("awaiting_approval")
    approve = demo.cli("approve", str(transfer["id"]), "--key", str(demo.key("suzuki")))
    assert approve.returncode == 0, approve.stderr
    return str(transfer["id"])


@needs_sshd
def test_a_changed_host_key_is_the_reason_shown_with_the_transfer(
    demo: Demo, sshd: Sshd, tmp_path: Path
) -> None:
    impostor = ssh_keygen(tmp_path / "impostor").rsplit(" ", 1)[0]
    _use_sftp(demo, port=sshd.port, user=sshd.user, key=str(sshd.client_key),
              known_hosts=f"[127.0.0.1]:{sshd.port} {impostor}", inbox=sshd.folder("inbox"),
              attempts=3)
    demo.start()
    tid = _approved(demo)
    demo.wait_state("failed")
    shown = demo.show(tid)
    error = shown["last_error"]
    assert error["rule"] == "delivery.host-key" and error["final"] is True
    assert "not the pinned one" in error["message"]
    assert "the transfer is failed" in error["hint"]
    assert f"tachiai transfers retry {tid}" in error["hint"]
    assert f"[127.0.0.1]:{sshd.port}" in error["hint"]
    assert [r["rule"] for r in shown["reasons"]] == ["delivery.host-key"]
    (listed,) = demo.json("transfers", "list", "--json")
    assert listed["last_error"] == error and listed["reasons"] == shown["reasons"]
    human = demo.cli("transfers", "show", tid, check=True).stdout
    assert "reason: delivery.host-key" in human and f"transfers retry {tid}" in human
    demo.stop()
    assert demo.cli("transfers", "retry", tid).returncode == 0
    again = demo.show(tid)  # sealed again: the old error is kept, but is not what it waits for
    assert again["state"] == "sealed" and again["reasons"] == [] and again["last_error"] == error


def test_a_handshake_timeout_is_the_reason_and_the_final_hint_says_failed(
    demo: Demo, silent: SilentServer, tmp_path: Path
) -> None:
    key = tmp_path / "client"
    ssh_keygen(key)
    host_key = ssh_keygen(tmp_path / "host").rsplit(" ", 1)[0]
    _use_sftp(demo, port=silent.port, user="nobody", key=str(key),
              known_hosts=f"[127.0.0.1]:{silent.port} {host_key}",
              inbox=tmp_path / "inbox", attempts=2, timeout=0.5)
    demo.start()
    tid = _approved(demo)
    demo.wait_state("failed", timeout=120)
    error = demo.show(tid)["last_error"]
    assert error["rule"] == "delivery.unavailable"
    assert error["attempts"] == 2 and error["final"] is True
    assert "stays queued" not in error["hint"]
    assert "the transfer is failed after 2 attempt(s)" in error["hint"]
    assert f"`tachiai transfers retry {tid}`" in error["hint"]
    assert demo.show(tid)["reasons"][0]["rule"] == "delivery.unavailable"
    log = demo.cli("audit", "log", "--json", check=True).stdout
    assert "delivery.retry" in log and "(attempt 1 of 2)" in log
