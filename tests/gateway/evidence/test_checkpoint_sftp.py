"""Ledger checkpoints in a remote SFTP folder, against a real OpenSSH sshd on 127.0.0.1.

Covers: checkpoints arrive (verified with the ledger.pub published beside them), one connection
kept across publishes, a changed host key refused with nothing written there while the local
places go on, the server stopped and restarted (the queued history caught up, no gap), a
server that never answers and one that stalls after login (signing is not held up; the writer
gives up and retries), and a daemon run through the CLI whose
remote copy, fetched with OpenSSH's own `sftp`, lets an auditor verify the ledger and catch a
truncated one.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import paramiko
import pytest

from audit.checkpoints import SignedCheckpoint, notes_in, parse, read_places
from audit.ledger import Ledger
from audit.notes import NoteVerifier
from gateway.config.routes import SftpEndpoint
from gateway.evidence.checkpoint_sftp import SftpSink
from gateway.evidence.checkpoint_sinks import DirectorySink
from gateway.evidence.checkpointing import CheckpointService, CheckpointSettings
from tests.audit.ledgers import attack, transfer_events
from tests.conftest import GOOD_ROWS, Demo, csv_bytes, wait_for
from tests.gateway.conftest import needs_sshd
from tests.gateway.transports.servers import Sshd, ssh_keygen

pytestmark = [pytest.mark.slow, needs_sshd]

LOGGER = "gateway.evidence.checkpoint_sftp"


def _endpoint(sshd: Sshd, folder: Path | str, **changes: object) -> SftpEndpoint:
    return sshd.endpoint(folder, **{"timeout_seconds": 5.0, **changes})


def _service(tmp_path: Path, *sinks: object) -> tuple[Ledger, CheckpointService]:
    (tmp_path / "state").mkdir(exist_ok=True)
    ledger = Ledger.open(tmp_path / "state" / "ledger.db")
    settings = CheckpointSettings(
        key_path=tmp_path / "state" / "keys" / "ledger.key",
        key_name="tachiai-test-ledger",
        state_dir=tmp_path / "state",
    )
    return ledger, CheckpointService(ledger, settings, sinks=list(sinks))  # type: ignore[arg-type]


def _sign(ledger: Ledger, service: CheckpointService, events: int) -> SignedCheckpoint:
    ledger.append(transfer_events(events, ledger.size()))
    signed = service.checkpoint_now()
    assert signed is not None
    return signed


def _history(folder: Path) -> list[str]:
    return [n for f in sorted((folder / "history").glob("*")) for n in notes_in(f.read_text())]


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == level]


def _transports() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if isinstance(t, paramiko.Transport) and t.is_alive()]


def test_checkpoints_arrive_remotely_and_verify_with_the_published_key(
    sshd: Sshd, tmp_path: Path
) -> None:
    remote = sshd.folder("checkpoints")
    sink = SftpSink(_endpoint(sshd, remote))
    ledger, service = _service(tmp_path, DirectorySink(tmp_path / "local"), sink)
    first = _sign(ledger, service, 20)
    assert sink.flush(10)
    session = sink._session
    assert session is not None
    signed = [first, *(_sign(ledger, service, n) for n in (5, 300, 1))]
    assert sink.flush(10)
    assert sink._session is session, "one connection kept open across publishes"

    assert (remote / "checkpoint").read_text() == signed[-1].note
    assert _history(remote) == [s.note for s in signed], "every checkpoint, in order, once"
    assert (remote / "ledger.pub").read_text().strip() == service.verifier.to_text()
    assert sorted(os.listdir(remote)) == ["checkpoint", "history", "ledger.pub"], "no temp file"
    assert (remote / "checkpoint").stat().st_uid == sshd.uid, "written by the SFTP account"
    notes, key = read_places([remote])
    assert key == service.verifier
    assert {parse(n, s, key).checkpoint.size for n, s in notes} == {20, 25, 325, 326}
    report = ledger.verify(checkpoints=notes, key=key)
    assert report.latest_signed is not None and report.latest_signed.checkpoint.size == 326
    assert service.close() == []
    wait_for(lambda: not _transports(), 30, "closing to hang up")


def test_a_wrong_ledger_pub_there_is_replaced(sshd: Sshd, tmp_path: Path) -> None:
    remote = sshd.folder("checkpoints")
    (remote / "ledger.pub").write_text("tachiai-someone-else+00000000+AAAA\n")
    sink = SftpSink(_endpoint(sshd, remote))
    ledger, service = _service(tmp_path, sink)
    _sign(ledger, service, 3)
    assert sink.flush(10)
    assert NoteVerifier.from_text((remote / "ledger.pub").read_text()) == service.verifier
    service.close()


def test_a_changed_host_key_is_refused_and_nothing_written_there_while_local_goes_on(
    sshd: Sshd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, LOGGER)
    remote = sshd.folder("checkpoints")
    local = tmp_path / "local"
    sink = SftpSink(_endpoint(sshd, remote), retry_max_seconds=0.05)
    ledger, service = _service(tmp_path, DirectorySink(local), sink)
    before = _sign(ledger, service, 10)
    assert sink.flush(10)
    remote_files = {p: p.read_bytes() for p in remote.rglob("*") if p.is_file()}

    sshd.kill()  # the server comes back with another host key (or someone else answers)
    for name in ("host_ed25519_key", "host_ed25519_key.pub"):
        (sshd.root / "conf" / name).unlink()
    ssh_keygen(sshd.root / "conf" / "host_ed25519_key", "host")
    sshd.start()
    after = [_sign(ledger, service, n) for n in (5, 7, 9)]
    assert (local / "checkpoint").read_text() == after[-1].note, "local places go on"
    wait_for(lambda: len(_records(caplog, logging.DEBUG)) >= 3, 60, "several refused retries")
    assert not sink.flush(0.2)

    errors = _records(caplog, logging.ERROR)
    assert len(errors) == 1, "logged once per outage"
    assert "not the pinned one" in errors[0].getMessage()
    assert "nothing was sent" in errors[0].getMessage()
    assert {p: p.read_bytes() for p in remote.rglob("*") if p.is_file()} == remote_files
    assert (remote / "checkpoint").read_text() == before.note
    assert service.close(5) == [sink.name]
    wait_for(lambda: not _transports(), 30, "no refused connection left running")


def test_publishing_resumes_after_the_server_is_stopped_and_restarted(
    sshd: Sshd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    remote = sshd.folder("checkpoints")
    sink = SftpSink(_endpoint(sshd, remote), retry_max_seconds=0.5)
    ledger, service = _service(tmp_path, DirectorySink(tmp_path / "local"), sink)
    signed = [_sign(ledger, service, 10)]
    assert sink.flush(10)

    sshd.kill()  # sessions and all: the connection we keep is cut
    for n in (4, 4, 4):
        signed.append(_sign(ledger, service, n))  # signing goes on; the place catches up
    assert not sink.flush(0.5)
    assert (remote / "checkpoint").read_text() == signed[0].note
    sshd.start()  # same port, same host key
    signed.append(_sign(ledger, service, 2))
    assert sink.flush(20), "publishing resumed"

    assert (remote / "checkpoint").read_text() == signed[-1].note
    assert _history(remote) == [s.note for s in signed], "the outage left no gap in history"
    assert len(_records(caplog, logging.ERROR)) == 1
    (back,) = _records(caplog, logging.WARNING)
    assert "again after" in back.getMessage()
    notes, key = read_places([remote])
    assert ledger.verify(checkpoints=notes, key=key).latest_signed == parse(
        signed[-1].note, str(remote / "checkpoint"), key
    )
    assert service.close() == []


def _silent_endpoint(tmp_path: Path, silent: socket.socket, timeout: float) -> SftpEndpoint:
    key = tmp_path / "client_key"
    ssh_keygen(key)
    host = ssh_keygen(tmp_path / "host_key").rsplit(" ", 1)[0]
    return SftpEndpoint("127.0.0.1", silent.getsockname()[1], "nobody", key, (host,), "/x",
                        timeout)


def test_a_server_that_never_answers_cannot_hold_up_signing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Causal, not timed: the handshake's own deadline is far away (60 s), so had signing or
    # closing waited for the server even once, that deadline would have passed and been logged.
    caplog.set_level(logging.INFO, LOGGER)
    with socket.socket() as silent:  # accepts connections (the kernel does) and says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        sink = SftpSink(_silent_endpoint(tmp_path, silent, 60.0), retry_max_seconds=0.2)
        local = tmp_path / "local"
        ledger, service = _service(tmp_path, DirectorySink(local), sink)
        for _ in range(5):
            signed = _sign(ledger, service, 3)
            assert (local / "checkpoint").read_text() == signed.note
        assert not _records(caplog, logging.ERROR), "no handshake has timed out yet"
        assert service.close(1) == [sink.name]
        assert not [r for r in _records(caplog, logging.ERROR)
                    if "SSH handshake" in r.getMessage()], "closing did not wait for it either"
    assert "5 ledger checkpoint(s) were not written" in caplog.text
    wait_for(lambda: not _transports(), 60, "the abandoned handshake to end")


def test_each_try_at_a_silent_server_ends_at_the_endpoints_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        sink = SftpSink(_silent_endpoint(tmp_path, silent, 1.0), retry_max_seconds=0.2)
        ledger, service = _service(tmp_path, DirectorySink(tmp_path / "local"), sink)
        _sign(ledger, service, 3)
        error = wait_for(lambda: _records(caplog, logging.ERROR), 60, "the timeout to be logged")
        # paramiko's banner timeout or our handshake deadline, whichever is first: both 1 s.
        assert re.search(r"SSH handshake within 1 s|SSH protocol banner", error[0].getMessage())
        assert service.close(1) == [sink.name]
    wait_for(lambda: not _transports(), 60, "the abandoned handshake to end")


@pytest.mark.skipif(os.geteuid() != 0, reason="logs in as root to run a forced command")
def test_a_server_that_stalls_after_login_is_cut_off_by_the_watchdog(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    # A real sshd that lets us log in, then runs `sleep` where the SFTP server should be:
    # paramiko waits for the SFTP version without a timeout of its own. (The forced command
    # needs a login shell, which `nobody` lacks, hence root.)
    server = Sshd()
    server.config.write_text(
        server.config.read_text()
        .replace("ForceCommand internal-sftp", "ForceCommand exec sleep 600")
        .replace(f"AllowUsers {server.user}", "AllowUsers root")
    )
    server.start()
    try:
        # Each step of the login may take longer than the round (a busy machine): whatever
        # step the round is in at 2 s, the watchdog is what cuts it off.
        endpoint = _endpoint(server, "/nowhere", user="root", timeout_seconds=5.0)
        sink = SftpSink(endpoint, round_seconds=2.0, retry_max_seconds=0.2)
        ledger, service = _service(tmp_path, DirectorySink(tmp_path / "local"), sink)
        started = time.time()
        _sign(ledger, service, 3)
        error = wait_for(lambda: _records(caplog, logging.ERROR), 60, "the stalled round")
        assert "no round finished within 2 s" in error[0].getMessage(), error[0].getMessage()
        assert error[0].created - started >= 2, "not cut off before the round's time"
        assert service.close(3) == [sink.name]
    finally:
        server.remove()


def test_an_unreachable_server_at_start_is_caught_up_once_it_answers(
    sshd: Sshd, tmp_path: Path
) -> None:
    remote = sshd.folder("checkpoints")
    sshd.kill()
    sink = SftpSink(_endpoint(sshd, remote), retry_max_seconds=0.2)
    ledger, service = _service(tmp_path, sink)
    signed = [_sign(ledger, service, n) for n in (3, 4)]
    assert not sink.flush(0.5)
    sshd.start()
    assert sink.flush(20)
    assert _history(remote) == [s.note for s in signed]
    service.close()


def test_an_outage_longer_than_the_backlog_leaves_a_logged_gap_and_the_latest(
    sshd: Sshd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    remote = sshd.folder("checkpoints")
    sshd.kill()
    sink = SftpSink(_endpoint(sshd, remote), backlog=2, retry_max_seconds=0.2)
    ledger, service = _service(tmp_path, sink)
    signed = [_sign(ledger, service, n) for n in (1, 2, 3, 4, 5)]
    # The outage met before it ends: on a busy machine the sink's thread may not have tried
    # yet when the server comes back, and then there is no gap to report.
    wait_for(lambda: _records(caplog, logging.ERROR), 60, "the sink to meet the outage")
    sshd.start()
    assert sink.flush(20)
    assert _history(remote) == [s.note for s in signed[-2:]]
    assert (remote / "checkpoint").read_text() == signed[-1].note
    (gap,) = [r for r in _records(caplog, logging.WARNING) if "will miss" in r.getMessage()]
    assert "more than 2 checkpoints" in gap.getMessage()
    assert "3 older one(s) left out" in caplog.text
    service.close()


# -- through the CLI and the daemon, and the auditor's side ------------------------------------


def _fetch(sshd: Sshd, remote: Path, into: Path, tmp_path: Path) -> Path:
    """What an auditor does: copy the remote folder with OpenSSH's sftp, host key pinned."""
    known_hosts = tmp_path / "auditor_known_hosts"
    known_hosts.write_text(sshd.known_hosts + "\n")
    subprocess.run(
        [
            shutil.which("sftp") or "sftp",
            "-q",
            "-b",
            "-",
            "-P",
            str(sshd.port),
            "-i",
            str(sshd.client_key),
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            f"{sshd.user}@127.0.0.1",
        ],
        input=f"get -R {remote} {into}\n",
        text=True,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return into


@pytest.mark.skipif(shutil.which("sftp") is None, reason="OpenSSH's sftp client is not installed")
def test_a_daemon_publishes_to_sftp_and_an_auditor_verifies_against_the_fetched_copy(
    demo: Demo, sshd: Sshd, tmp_path: Path
) -> None:
    remote = sshd.folder("checkpoints")
    with open(demo.config, "a", encoding="utf-8") as fh:
        fh.write(f"""
[ledger]
checkpoint_dirs = ["state/checkpoints"]

[[ledger.sftp]]
host = "127.0.0.1"
port = {sshd.port}
user = "{sshd.user}"
key_file = "{sshd.client_key}"
known_hosts = "{sshd.known_hosts}"
remote_dir = "{remote}"
timeout_seconds = 30
""")
    demo.start()
    demo.drop("a.csv", csv_bytes(GOOD_ROWS))
    demo.wait_state("awaiting_approval")
    size = Ledger.open(demo.ledger, read_only=True).size()
    wait_for(
        lambda: (
            (remote / "checkpoint").is_file()
            and f"\n{size}\n" in (remote / "checkpoint").read_text()
        ),
        60,
        f"a checkpoint of {size} events on the SFTP server",
    )
    assert demo.stop() == 0
    log = demo.daemon_log()
    assert "cannot write ledger checkpoints" not in log, log

    fetched = _fetch(sshd, remote, tmp_path / "fetched", tmp_path)
    public_key = demo.root / "state" / "keys" / "ledger.pub"
    assert (fetched / "ledger.pub").read_text() == public_key.read_text()
    local = demo.root / "state" / "checkpoints" / "checkpoint"
    assert (fetched / "checkpoint").read_text() == local.read_text(), "the last one went too"
    copy = tmp_path / "ledger-copy.db"
    assert demo.cli("audit", "copy", str(copy)).returncode == 0
    result = demo.cli(
        "audit", "verify", "--ledger", str(copy), "--checkpoint", str(fetched),
        "--public-key", str(public_key),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "intact" in result.stdout and "WARNING" not in result.stdout + result.stderr

    # The owner of the gateway's files cuts the tail and every trace of it in the database;
    # only the copy on the SFTP server still shows how long the ledger was.
    keep = size - 2
    attack(
        copy,
        f"DELETE FROM ledger_events WHERE seq >= {keep}",
        f"DELETE FROM ledger_heads WHERE size > {keep}",
        "DELETE FROM ledger_checkpoints",
    )
    alone = demo.cli("audit", "verify", "--ledger", str(copy), "--public-key", str(public_key))
    assert alone.returncode == 0, "without the external copy the cut does not show"
    cut = demo.cli(
        "audit", "verify", "--ledger", str(copy), "--checkpoint", str(fetched),
        "--public-key", str(public_key),
    )  # fmt: skip
    assert cut.returncode == 1, cut.stdout + cut.stderr
    said = cut.stdout + cut.stderr
    assert "the ledger was cut" in said and f"records {size} events but only {keep}" in said, said
