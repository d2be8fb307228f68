"""The daemon's checkpoint service: the key file, the places, the thread, and failing closed."""

from __future__ import annotations

import logging
import os
import socket
import stat
import time
from pathlib import Path

import pytest

from audit.checkpoints import notes_in, parse, read_places
from audit.errors import LedgerIntegrityError
from audit.ledger import Ledger
from gateway.errors import ConfigError, KeyFileError
from gateway.evidence.checkpoint_sinks import DirectorySink, SyslogSink
from gateway.evidence.checkpointing import CheckpointService, CheckpointSettings
from gateway.evidence.signing_key import load_key, load_or_create_key
from tests.audit.ledgers import attack, rewrite_from, transfer_events
from tests.conftest import wait_for


def state(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir(exist_ok=True)
    return tmp_path / "state"


def settings(tmp_path: Path, **kw: object) -> CheckpointSettings:
    values: dict[str, object] = {
        "key_path": tmp_path / "state" / "keys" / "ledger.key",
        "key_name": "tachiai-test-ledger",
        "directories": (tmp_path / "mnt" / "checkpoints",),
        "interval_seconds": 0.2,
        "state_dir": tmp_path / "state",
    }
    values.update(kw)
    return CheckpointSettings(**values)  # type: ignore[arg-type]


def test_the_key_is_made_once_private_and_its_public_half_published(tmp_path: Path) -> None:
    path = tmp_path / "state" / "keys" / "ledger.key"
    signer = load_or_create_key(path, "tachiai-test-ledger")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path, "ignored").to_text() == signer.to_text()
    assert (path.parent / "ledger.pub").read_text().strip() == signer.verifier().to_text()
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        load_key(path)
    os.chmod(path, 0o600)
    path.write_text("not a key")
    with pytest.raises(KeyFileError):
        load_key(path)


def test_checkpoint_now_signs_and_writes_every_place(tmp_path: Path) -> None:
    ledger = Ledger.open(state(tmp_path) / "ledger.db")
    service = CheckpointService(ledger, settings(tmp_path))
    assert service.checkpoint_now() is None  # nothing to sign in an empty ledger
    ledger.append(transfer_events(300))
    signed = service.checkpoint_now()
    assert signed is not None and signed.checkpoint.size == 300
    assert service.checkpoint_now() is None
    folder = tmp_path / "mnt" / "checkpoints"
    assert (folder / "checkpoint").read_text() == signed.note
    notes, key = read_places([folder])
    assert key == service.verifier and [n for n, _ in notes].count(signed.note) == 2
    assert [n for n, _ in ledger.checkpoints()] == [signed.note]
    report = ledger.verify(checkpoints=notes, key=key)
    assert report.latest_signed is not None and report.latest_signed.checkpoint.size == 300


def test_the_thread_signs_each_new_size_after_new_events(tmp_path: Path) -> None:
    ledger = Ledger.open(state(tmp_path) / "ledger.db")
    service = CheckpointService(ledger, settings(tmp_path, interval_seconds=1.0))
    latest = tmp_path / "mnt" / "checkpoints" / "checkpoint"
    service.start()
    try:
        for n in (5, 40, 41):
            ledger.append(transfer_events(n - ledger.size(), ledger.size()))
            service.notify()
            wait_for(lambda n=n: latest.exists() and f"\n{n}\n" in latest.read_text(),
                     timeout=60, what=f"a checkpoint of {n} events")
        ledger.append(transfer_events(3, 41))
    finally:
        service.stop()  # signs the last three too
    notes, key = read_places([tmp_path / "mnt" / "checkpoints"])
    sizes = {parse(n, s, key).checkpoint.size for n, s in notes}
    assert {5, 40, 41, 44} <= sizes
    assert ledger.verify(checkpoints=notes, key=key).size == 44


def test_the_thread_signs_at_most_once_an_interval_however_often_it_is_woken(
        tmp_path: Path) -> None:
    # A bound that a slow machine only makes easier to hold: fewer signatures, never more.
    interval = 0.5
    ledger = Ledger.open(state(tmp_path) / "ledger.db")
    service = CheckpointService(ledger, settings(tmp_path, interval_seconds=interval))
    service.start()
    started = time.monotonic()
    try:
        for _ in range(60):
            ledger.append(transfer_events(1, ledger.size()))
            service.notify()
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        signed_while_running = len(ledger.checkpoints())
    finally:
        service.stop()
    assert signed_while_running <= elapsed / interval + 1
    note, signature = ledger.checkpoints()[-1]
    assert parse(note, signature, service.verifier).checkpoint.size == 60


def test_a_restarted_service_continues_from_its_last_checkpoint(tmp_path: Path) -> None:
    ledger = Ledger.open(state(tmp_path) / "ledger.db")
    ledger.append(transfer_events(600))
    first = CheckpointService(ledger, settings(tmp_path))
    assert first.checkpoint_now() is not None
    ledger.append(transfer_events(100, 600))
    second = CheckpointService(ledger, settings(tmp_path))
    second.start()
    second.stop()
    notes, key = read_places([tmp_path / "mnt" / "checkpoints"])
    report = ledger.verify(checkpoints=notes, key=key)
    assert {c.checkpoint.size for c in report.signed} == {600, 700}


def test_a_rewritten_ledger_is_never_signed(tmp_path: Path) -> None:
    path = state(tmp_path) / "ledger.db"
    ledger = Ledger.open(path)
    ledger.append(transfer_events(300))
    assert CheckpointService(ledger, settings(tmp_path)).checkpoint_now() is not None
    ledger.close()
    rewrite_from(path, 100, {"rows": 0})  # also deletes the checkpoints inside the ledger
    service = CheckpointService(Ledger.open(path), settings(tmp_path))
    with pytest.raises(LedgerIntegrityError, match="rewritten"):
        service.start()
    with pytest.raises(LedgerIntegrityError):
        service.checkpoint_now()


def test_a_cut_ledger_is_never_signed(tmp_path: Path) -> None:
    path = state(tmp_path) / "ledger.db"
    ledger = Ledger.open(path)
    ledger.append(transfer_events(50))
    assert CheckpointService(ledger, settings(tmp_path)).checkpoint_now() is not None
    ledger.close()
    attack(
        path,
        "DELETE FROM ledger_events WHERE seq >= 40",
        "DELETE FROM ledger_heads WHERE size > 40",
        "DELETE FROM ledger_checkpoints",
    )
    with pytest.raises(LedgerIntegrityError, match="cut"):
        CheckpointService(Ledger.open(path), settings(tmp_path)).checkpoint_now()


def test_syslog_receives_the_note_exactly(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        port = server.getsockname()[1]
        ledger = Ledger.open(state(tmp_path) / "ledger.db")
        ledger.append(transfer_events(10))
        service = CheckpointService(
            ledger, settings(tmp_path, directories=(), syslog=f"udp://127.0.0.1:{port}")
        )
        signed = service.checkpoint_now()
        message = server.recv(4096).decode()
    assert signed is not None and message.startswith("<85>tachiai[")
    assert notes_in(message) == [signed.note]


def test_a_failing_place_does_not_stop_the_others_and_is_retried(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a folder should be")
    good = tmp_path / "good"
    ledger = Ledger.open(state(tmp_path) / "ledger.db")
    ledger.append(transfer_events(10))
    service = CheckpointService(
        ledger,
        settings(tmp_path, directories=()),
        sinks=[DirectorySink(blocked), DirectorySink(good)],
    )
    signed = service.checkpoint_now()
    assert signed is not None and (good / "checkpoint").read_text() == signed.note
    blocked.unlink()
    assert service.checkpoint_now() is None  # nothing new, but the pending copy goes out
    assert (blocked / "checkpoint").read_text() == signed.note


@pytest.mark.parametrize("target", ["udp://nohost", "ftp://h:1", "relative/path"])
def test_bad_syslog_targets_are_configuration_errors(target: str) -> None:
    with pytest.raises(ConfigError):
        SyslogSink(target)


def test_an_idle_ledger_gets_no_new_checkpoint_however_long_it_waits(tmp_path: Path) -> None:
    ledger = Ledger.open(state(tmp_path) / "ledger.db")
    ledger.append(transfer_events(7))
    service = CheckpointService(ledger, settings(tmp_path, interval_seconds=0.05))
    service.start()
    try:
        wait_for(lambda: service.signed == 1, 60, "the first checkpoint")
        ticks, notes = service.ticks, len(ledger.checkpoints())
        service.notify()  # a flush that appended nothing signs nothing either
        wait_for(lambda: service.ticks >= ticks + 3, 60, "three rounds of the service")
        assert service.signed == 1
        assert len(ledger.checkpoints()) == notes
        ledger.append(transfer_events(1, 7))  # as a command of another process does
        wait_for(lambda: service.signed == 2, 60, "a checkpoint of the new event")
    finally:
        service.stop()
    sizes = sorted(parse(n, s, None).checkpoint.size for n, s in ledger.checkpoints())
    assert sizes == [7, 8]


def test_the_daemon_start_says_where_it_resumes_once(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    ledger = Ledger.open(state(tmp_path) / "ledger.db")
    ledger.append(transfer_events(10))
    service = CheckpointService(ledger, settings(tmp_path))
    with caplog.at_level(logging.INFO, logger="gateway.evidence.checkpointing"):
        service.check_start()  # the daemon: before recovery, then again when it starts
        service.start()
        service.stop()
    told = [m for m in (r.getMessage() for r in caplog.records)
            if "ledger checkpoints signed by" in m]
    assert len(told) == 1 and told[0].endswith("none signed yet")
