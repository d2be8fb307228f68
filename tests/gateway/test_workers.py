"""The daemon's workers (gateway.workers): several threads per lane take many files through
the whole path, each delivered exactly once, also when the daemon is killed (SIGKILL) at random
moments; a silent partner holds only its own lane; an internal error in one file's step ends
that transfer `failed` (internal.error) after its tries while the others are delivered.
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config.settings import load_settings
from gateway.errors import SignatureError
from gateway.faults import FAIL_ENV
from gateway.identity import sshsig
from gateway.identity.sshkeys import load_private_key
from gateway.outbound import approvals
from gateway.runtime import Runtime
from tests.conftest import GOOD_ROWS, Demo, csv_bytes, needs_7zz, sealed_files, wait_for

pytestmark = pytest.mark.slow

AGREEMENT = "isa-nhi-status-loss"
BUNDLED = Path(__file__).resolve().parents[2] / "policies" / "agreements" / f"{AGREEMENT}.toml"


def _set_gateway(demo: Demo, **values: object) -> None:
    text = demo.config.read_text(encoding="utf-8")
    lines = "".join(f"{k} = {v}\n" for k, v in values.items())
    demo.config.write_text(text.replace("[gateway]\n", f"[gateway]\n{lines}", 1),
                           encoding="utf-8")


def _approve_all(demo: Demo) -> int:
    """Approve every waiting transfer in this process, as `tachiai approve` would."""
    rt = Runtime.open(load_settings(demo.config))
    key = load_private_key(demo.key("suzuki"))
    try:
        waiting = rt.store.list_transfers()
        count = 0
        for t in waiting:
            if t.state != "awaiting_approval":
                continue
            signature = sshsig.sign(approvals.statement(rt, t), key,
                                    approvals.APPROVAL_NAMESPACE)
            # A file equal to an earlier one would carry the duplicate notice; accepted, as
            # this test is about exactly-once delivery.
            try:
                approvals.approve(rt, t.id, signature, duplicate_ok=True)
            except SignatureError:
                # A file with the same bytes was delivered between the signing and the
                # approval: the statement gained its duplicate-of line. Signed anew next round.
                continue
            count += 1
        return count
    finally:
        rt.store.engine.dispose()


def _kill(demo: Demo) -> None:
    assert demo.daemon is not None
    demo.daemon.kill()
    demo.daemon.wait()
    demo.daemon = None


def _opened(demo: Demo, transfer: dict[str, object], out: Path) -> bytes:
    password = Path(str(transfer["password_path"])).read_text().strip()
    subprocess.run(["7zz", "x", "-y", f"-o{out}", f"-p{password}",
                    str(transfer["delivered_path"])], check=True, capture_output=True)
    (inner,) = list(out.iterdir())
    return inner.read_bytes()


@needs_7zz
def test_many_workers_deliver_each_file_exactly_once_through_random_kills(
    demo: Demo, tmp_path: Path
) -> None:
    _set_gateway(demo, workers=3)
    rng = random.Random(20261203)
    # Every file its own bytes: two equal files approved at once are not this test's subject
    # (the second's approval is voided at sealing once the first is delivered: its statement
    # gains the duplicate-of line: gateway.outbound.approvals.authorize).
    files = {f"w{i:02d}.csv": csv_bytes([*GOOD_ROWS] * (i + 1)) for i in range(60)}
    pending = list(files.items())
    demo.start()
    kills = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for _ in range(rng.randint(5, 12)):
            if pending:
                demo.drop(*pending.pop())
        _approve_all(demo)
        if kills < 6:
            time.sleep(rng.uniform(0.2, 1.5))  # a random moment to die at, not a wait for work
            _kill(demo)
            kills += 1
            demo.start()
        if not pending and len(demo.transfers("delivered")) == len(files):
            break
        wait_for(lambda: pending or _approve_all(demo) >= 0, 5)
    wait_for(lambda: (_approve_all(demo), len(demo.transfers("delivered")) == len(files))[1],
             240, "every file delivered")
    demo.wait_ledger()
    delivered = demo.transfers("delivered")
    assert len(demo.transfers()) == len(files), "one drop, one transfer"
    assert len(sealed_files(demo.inbox)) == len(files), "each file delivered once"
    assert len(list(demo.passwords.iterdir())) == len(files)
    for n, transfer in enumerate(delivered):
        data = _opened(demo, transfer, tmp_path / f"opened-{n}")
        assert data == files[str(transfer["file_name"])]
    assert demo.cli("audit", "verify").returncode == 0
    log = demo.cli("audit", "log").stdout
    assert log.count("transfer.delivered") == len(files)
    assert log.count("transfer.sealed") == len(files)
    assert demo.stop() == 0


class SilentServer:
    """Accepts TCP on 127.0.0.1 and never says a word (an SFTP partner gone silent)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.held: list[socket.socket] = []
        self.accepted = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)  # held open, never answered
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def _two_recipients(demo: Demo, silent: SilentServer) -> Path:
    """nhi-central (flow monthly) behind the silent SFTP server; nhi-federations (flow
    "weekly", a copy of monthly) delivered locally. Returns the weekly outbox."""
    text = BUNDLED.read_text(encoding="utf-8")
    start = text.index("[[flows]]")
    end = text.index("[datasets.")
    # The monthly flow alone (the forwarding flows to the federations follow it).
    second = text.find("[[flows]]", start + 1)
    flow = text[start:second if 0 < second < end else end].replace(
        'id = "monthly"', 'id = "weekly"').replace(
        'to = "nhi-central"', 'to = "nhi-federations"').replace(
        'onward = ["nhi-federations"]', 'onward = ["municipalities"]')
    flow = "\n".join(line for line in flow.splitlines() if not line.startswith("schedule"))
    agreement = demo.root / "demo" / "two-recipients.toml"
    agreement.write_text(text[:end] + flow + "\n\n" + text[end:], encoding="utf-8")
    delegations = BUNDLED.with_name(f"{AGREEMENT}.delegations.toml")
    (agreement.parent / delegations.name).write_bytes(delegations.read_bytes())
    cfg = demo.config.read_text(encoding="utf-8")
    cfg = cfg.replace(f'agreements = ["{AGREEMENT}"]', f'agreements = ["{agreement}"]')
    start = cfg.index("[recipients.nhi-central]")
    local = demo.root / "demo" / "recipients" / "nhi-federations"
    kind, key = demo.key("sato").with_suffix(".pub").read_text().split()[:2]  # never offered
    cfg = cfg[:start] + f"""[recipients.nhi-central]
transport = "sftp"
host = "127.0.0.1"
port = {silent.port}
user = "nobody"
key_file = "{demo.key('sato')}"
known_hosts = "[127.0.0.1]:{silent.port} {kind} {key}"
remote_dir = "/inbox"
timeout_seconds = 600
attempts = 1
password_channel = {{ kind = "retrieval" }}

[recipients.nhi-federations]
transport = "local"
inbox = "{local / 'inbox'}"
password_channel = "{local / 'passwords'}"
"""
    demo.config.write_text(cfg, encoding="utf-8")
    return demo.outbox.parent / "weekly"


def _state(demo: Demo, transfer_id: str) -> dict[str, object]:
    return demo.show(transfer_id)


def test_a_silent_partner_holds_only_its_own_lane(demo: Demo, silent: SilentServer) -> None:
    weekly = _two_recipients(demo, silent)
    demo.start()
    demo.drop("to-silent.csv", csv_bytes(GOOD_ROWS))
    (stuck,) = demo.wait_state("awaiting_approval")
    _approve_all(demo)
    assert silent.accepted.wait(60), "the delivery to the silent partner never started"
    # The stuck delivery now waits on a partner that never answers (for up to 600 s).
    (weekly / "to-local.csv").write_bytes(csv_bytes(GOOD_ROWS))
    demo.drop("new-for-silent.csv", csv_bytes(GOOD_ROWS))
    wait_for(lambda: len(demo.transfers("awaiting_approval")) == 2, 60,
             "both new files taken in while a delivery hangs")
    _approve_all(demo)
    (other,) = wait_for(lambda: [t for t in demo.transfers("delivered")
                                 if t["file_name"] == "to-local.csv"], 60,
                        "the other partner's file delivered")
    assert other["recipient"] == "nhi-federations"
    # Delivered before the silent partner's first attempt ended: it never waited for it.
    assert _state(demo, str(stuck["id"]))["state"] == "sealed"
    log = demo.cli("audit", "log").stdout
    assert "delivery.retry" not in log and "transfer.failed" not in log
    _kill(demo)  # the silent partner would hold a graceful stop for its timeout


def test_an_internal_error_in_one_file_fails_it_and_the_others_go(demo: Demo) -> None:
    _set_gateway(demo, error_attempts=3)
    demo.start(env={FAIL_ENV: "seal:broken.csv"})
    # Each file its own bytes: equal files delivered one after another are a duplicate notice,
    # not this test's subject.
    for n, name in enumerate(("ok-1.csv", "broken.csv", "ok-2.csv"), start=1):
        demo.drop(name, csv_bytes([*GOOD_ROWS] * n))
    demo.wait_state("awaiting_approval", count=3, timeout=60)
    _approve_all(demo)
    demo.wait_state("delivered", count=2, timeout=60)
    (failed,) = demo.wait_state("failed", timeout=60)
    assert failed["file_name"] == "broken.csv"
    shown = demo.show(str(failed["id"]))
    rules = [r["rule"] for r in shown["reasons"]]
    assert rules == ["internal.error"]
    assert "report it" in shown["reasons"][0]["message"]
    assert demo.daemon_log().count("internal error in step approved") == 3
    assert demo.daemon is not None and demo.daemon.poll() is None, "the daemon kept running"
    assert demo.cli("audit", "verify").returncode == 0
    assert demo.stop() == 0


def test_usr1_writes_every_threads_stack_to_the_log_and_the_daemon_goes_on(demo: Demo) -> None:
    # What an operator (or a test whose daemon does not stop) asks of a daemon that seems stuck.
    daemon = demo.start()
    daemon.send_signal(signal.SIGUSR1)
    # The lanes' threads wait in gateway/workers.py; the main thread in the daemon's loop.
    wait_for(lambda: "Current thread" in demo.daemon_log()
             and 'gateway/workers.py", line' in demo.daemon_log()
             and 'gateway/daemon.py", line' in demo.daemon_log(), 60,
             "the threads' stacks in the log")
    demo.drop("after-usr1.csv", csv_bytes(GOOD_ROWS))
    wait_for(lambda: demo.transfers(), 60, "a file taken in after SIGUSR1")
    assert daemon.poll() is None
    assert demo.stop() == 0
