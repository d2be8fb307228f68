"""Two nodes on one real PostgreSQL: two daemons (separate processes, node names gw-a and gw-b)
share one database and one state folder (spool, checkpoints), and take 100 files, each with its
own bytes, through the whole path (drop, checks, approval, seal, delivery over SFTP to a real
sshd). gw-a is killed with SIGKILL at random moments, at least once while it is provably inside
an upload (paused there by the TACHIAI_FAULT_PAUSE hook, its partial upload on the server), and
restarted; gw-b finishes what gw-a held once its lease runs out. At the end every file is
delivered exactly once (one ZIP per file on the server, each opened by `7zz` with its own
password holds the dropped bytes), each transfer has each of its events exactly once, and
`audit verify` with the signed checkpoints passes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gateway.config.settings import load_settings
from gateway.faults import PAUSE_ENV, PAUSED_MARK, RESUME_ENV
from gateway.identity import sshsig
from gateway.identity.sshkeys import load_private_key
from gateway.outbound import approvals
from gateway.runtime import Runtime
from tests.conftest import (
    GOOD_ROWS,
    Demo,
    csv_bytes,
    needs_7zz,
    sealed_files,
    tachiai_command,
    wait_for,
)
from tests.gateway.conftest import needs_sshd
from tests.gateway.transports.servers import Sshd
from tests.pg import needs_postgres

pytestmark = [pytest.mark.slow, needs_postgres]

FILES = 100
LEASE_SECONDS = 6  # short, so gw-b takes over gw-a's work soon after a kill
#: The events every transfer delivered over this path has, each exactly once.
PATH_EVENTS = ("transfer.dropped", "transfer.quarantined", "transfer.checked",
               "transfer.approved", "transfer.sealed", "transfer.delivered")


class Node:
    """One `tachiai run` process of a node, restarted under the same node name."""

    def __init__(self, demo: Demo, name: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.config = demo.root / f"tachiai-{name}.toml"
        self.config.write_text(demo.config.read_text(encoding="utf-8").replace(
            "[gateway]\n", f'[gateway]\nnode_name = "{name}"\n', 1), encoding="utf-8")
        self.env = {**os.environ, **demo.env, **(env or {})}
        self.logs: list[Path] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.root = demo.root

    def start(self) -> None:
        assert self.process is None
        log_path = self.root / f"{self.name}-{len(self.logs)}.log"
        self.logs.append(log_path)
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*tachiai_command(), "run", "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, env=self.env,
            )
        wait_for(lambda: b"tachiai is running" in log_path.read_bytes()
                 or self.process is None or self.process.poll() is not None,
                 60, f"{self.name} to start")
        assert self.process.poll() is None, self.log()

    def current_log(self) -> str:
        return self.logs[-1].read_text(errors="replace") if self.logs else ""

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def stop(self) -> int:
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.name} did not stop on SIGTERM") from None
        self.process = None
        return code


def _on_postgres_and_sftp(demo: Demo, url: str, sshd: Sshd, inbox: Path) -> None:
    passwords = demo.root / "demo" / "recipients" / "nhi-central" / "passwords"
    cfg = demo.config.read_text(encoding="utf-8")
    cfg = cfg.replace("[gateway]\n", f"[gateway]\nworkers = 2\nlease_seconds = {LEASE_SECONDS}\n",
                      1)
    cfg = cfg.replace("poll_seconds = 0.05", "poll_seconds = 0.3")
    start = cfg.index("[recipients.nhi-central]")
    end = cfg.find("\n[", start + 1)
    rest = "" if end < 0 else cfg[end:]
    cfg = cfg[:start] + f"""[recipients.nhi-central]
transport = "sftp"
host = "127.0.0.1"
port = {sshd.port}
user = "{sshd.user}"
key_file = "{sshd.client_key}"
known_hosts = "{sshd.known_hosts}"
remote_dir = "{inbox}"
attempts = 10
password_channel = "{passwords}"
""" + rest + f'\n[database]\nurl = "{url}"\n'
    demo.config.write_text(cfg, encoding="utf-8")


def _approve_all(demo: Demo) -> int:
    """Approve every waiting transfer, signed by the witness, as `tachiai approve` would."""
    rt = Runtime.open(load_settings(demo.config))
    key = load_private_key(demo.key("suzuki"))
    try:
        count = 0
        for t in rt.store.list_transfers():
            if t.state == "awaiting_approval":
                signature = sshsig.sign(approvals.statement(rt, t), key,
                                        approvals.APPROVAL_NAMESPACE)
                approvals.approve(rt, t.id, signature)
                count += 1
        return count
    finally:
        rt.store.engine.dispose()


@pytest.fixture
def sshd_server() -> Iterator[Sshd]:
    server = Sshd()
    server.start()
    yield server
    server.remove()


@needs_sshd
@needs_7zz
def test_two_nodes_on_postgres_deliver_each_file_once_through_kills_mid_upload(
    demo: Demo, pg_url: str, sshd_server: Sshd, tmp_path: Path
) -> None:
    inbox = sshd_server.folder("inbox")
    _on_postgres_and_sftp(demo, pg_url, sshd_server, inbox)
    # Each file its own bytes (a repeat would meet the duplicate notice).
    files = {f"n{i:03d}.csv": csv_bytes(GOOD_ROWS * (i + 1)) for i in range(FILES)}
    pending = list(files.items())
    rng = random.Random(20261204)
    # gw-a pauses inside the first upload of each of its lives, so it can be killed there: for
    # as long as it takes to see it paused, until the resume file says the lives that follow
    # pass the point at once.
    resume = tmp_path / "resume"
    a = Node(demo, "gw-a", {PAUSE_ENV: "upload-block:600", RESUME_ENV: str(resume)})
    b = Node(demo, "gw-b")
    a.start()
    b.start()

    def delivered() -> int:
        return len(demo.transfers("delivered"))

    try:
        kills_mid_upload = kills_at_random = 0
        while pending or kills_mid_upload < 2:
            for _ in range(rng.randint(10, 25)):
                if pending:
                    demo.drop(*pending.pop())
            _approve_all(demo)
            if kills_mid_upload < 2:
                # Wait until gw-a is inside an upload, its partial file on the server …
                wait_for(lambda: (_approve_all(demo), PAUSED_MARK in a.current_log())[1],
                         120, "gw-a inside an upload")
                assert [p for p in inbox.iterdir() if p.name.endswith(".part")], \
                    "a partial upload on the server while gw-a is paused inside it"
                a.kill()  # … and kill it there
                kills_mid_upload += 1
                if kills_mid_upload == 2:
                    resume.touch()
            elif kills_at_random < 3:
                time.sleep(rng.uniform(0.3, 2.0))  # a random moment to die at, not a wait
                a.kill()
                kills_at_random += 1
            else:
                continue
            if rng.random() < 0.5:
                # gw-b alone for longer than a lease: it takes over what gw-a held.
                before = delivered()
                wait_for(lambda b4=before: (_approve_all(demo), delivered() > b4)[1],
                         120, "gw-b delivering while gw-a is down")
            a.start()
        wait_for(lambda: (_approve_all(demo), delivered() == FILES)[1], 300,
                 "every file delivered")
        assert b.process is not None and b.process.poll() is None, "gw-b kept running"
    finally:
        codes = (a.stop(), b.stop())
    assert codes == (0, 0), a.log() + b.log()

    # Every event is in the ledger (the last checkpoint was signed at the stops).
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pending_events")).scalar_one() == 0
    engine.dispose()

    transfers = demo.transfers()
    assert len(transfers) == FILES, "one drop, one transfer: no phantom intake"
    assert Counter(t["state"] for t in transfers) == {"delivered": FILES}
    assert sorted(t["file_name"] for t in transfers) == sorted(files)
    zips = sealed_files(inbox)
    assert len(zips) == FILES, "each file delivered once"
    assert [p.name for p in inbox.iterdir() if p.name.endswith(".part")] == []
    for n, t in enumerate(transfers):
        password = Path(str(t["password_path"])).read_text().strip()
        out = tmp_path / f"opened-{n}"
        placed = inbox / str(t["delivered_path"]).rsplit("/", 1)[1]  # its sftp:// URL's name
        subprocess.run(["7zz", "x", "-y", f"-o{out}", f"-p{password}", str(placed)],
                       check=True, capture_output=True)
        (inner,) = list(out.iterdir())
        assert inner.name == t["file_name"]
        assert hashlib.sha256(inner.read_bytes()).digest() == hashlib.sha256(
            files[str(t["file_name"])]).digest()

    events = [json.loads(line) for line in
              demo.cli("audit", "log", "--json", check=True).stdout.splitlines()]
    keys = [e["key"] for e in events]
    assert len(keys) == len(set(keys)), "no event twice"
    per_transfer = Counter((e["subject"], e["kind"]) for e in events)
    for t in transfers:
        for kind in PATH_EVENTS:
            assert per_transfer[(t["id"], kind)] == 1, (t["id"], kind)
    assert "intake.vanished" not in json.dumps(events)
    verified = demo.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "checkpoint" in verified.stdout
    # Both nodes delivered, and gw-a was restarted after each of its kills.
    assert "is delivered" in a.log() and "is delivered" in b.log()
    assert len(a.logs) == kills_mid_upload + kills_at_random + 1


def test_a_change_on_one_node_wakes_the_other_before_its_next_poll(
    demo: Demo, pg_url: str
) -> None:
    """gw-b polls only once in ten minutes; a file approved elsewhere (another process on the
    same database) is sealed and delivered by gw-b long before its next poll: the approval's
    NOTIFY woke it (PostgreSQL LISTEN/NOTIFY; polling stays the truth)."""
    poll = 600.0
    cfg = demo.config.read_text(encoding="utf-8").replace(
        "poll_seconds = 0.05", f"poll_seconds = {poll}")
    demo.config.write_text(cfg + f'\n[database]\nurl = "{pg_url}"\n', encoding="utf-8")
    b = Node(demo, "gw-b")
    b.start()
    try:
        # Logged just after "tachiai is running", which is all `start` waits for.
        wait_for(lambda: "listening for work from other nodes" in b.current_log(), 30,
                 "gw-b to listen for work from other nodes")
        demo.drop("wake.csv", csv_bytes(GOOD_ROWS))  # taken in at once: inotify, not the poll
        (waiting,) = wait_for(lambda: demo.transfers("awaiting_approval"), 60,
                              "the file checked")
        demo.cli("approve", str(waiting["id"]), "--key", str(demo.key("suzuki")), check=True)
        # Nothing on gw-b wakes it now but the notification: without it, the file would wait
        # for the poll ten minutes after gw-b started, far beyond this wait.
        wait_for(lambda: demo.transfers("delivered"), 120,
                 "the file delivered by gw-b before its next poll")
    finally:
        assert b.stop() == 0
    assert "is delivered" in b.log()
