"""The ledger refuses what the gateway did not write (issue 11).

An event appended to the ledger behind the gateway's back, with a correct leaf hash and tree
head (made with audit's own functions, as an attacker with the file would), is never signed
and stops the start. The gateway's own events, a crash between the append and the record, and
a state made before the record existed are not false alarms.
"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest

from audit.errors import LedgerIntegrityError
from audit.events import Draft
from audit.ledger import Ledger
from gateway.evidence import recorder
from gateway.evidence.checkpointing import CheckpointService, CheckpointSettings
from gateway.evidence.ledger_guard import LedgerGuard
from gateway.faults import ENV
from gateway.state.store import Store
from tests.audit.ledgers import transfer_events
from tests.conftest import GOOD_ROWS, Demo, csv_bytes


def forged(key: str = "t-forged:transfer.approved") -> Draft:
    return Draft(key=key, kind="transfer.approved", time_ns=1_790_000_000_000_000_000,
                 subject="t-forged", agreement="agreement-a", actor="mallory",
                 data={"witnesses": ["mallory"]})


def service(tmp_path: Path, store: Store, ledger: Ledger) -> CheckpointService:
    settings = CheckpointSettings(
        key_path=tmp_path / "state" / "keys" / "ledger.key", key_name="tachiai-test-ledger",
        directories=(tmp_path / "mnt" / "checkpoints",), interval_seconds=0.2,
        state_dir=tmp_path / "state")
    return CheckpointService(ledger, settings, guard=LedgerGuard(store, ledger))


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Store, Ledger]:
    (tmp_path / "state").mkdir()
    return Store(tmp_path / "state" / "state.db"), Ledger.open(tmp_path / "state" / "ledger.db")


def test_the_gateways_own_events_are_signed(tmp_path: Path, parts: tuple[Store, Ledger]) -> None:
    store, ledger = parts
    store.record(transfer_events(3))
    recorder.flush(store, ledger)
    signed = service(tmp_path, store, ledger).checkpoint_now()
    assert signed is not None and signed.checkpoint.size == ledger.size()
    store.record(transfer_events(2, start=3))
    recorder.flush(store, ledger)
    again = service(tmp_path, store, ledger)  # a restart
    again.check_start()
    assert again.checkpoint_now() is not None


def test_a_forged_event_is_named_and_never_signed(tmp_path: Path,
                                                  parts: tuple[Store, Ledger]) -> None:
    store, ledger = parts
    store.record(transfer_events(2))
    recorder.flush(store, ledger)
    first = service(tmp_path, store, ledger)
    first.checkpoint_now()
    store.record(transfer_events(1, start=2))
    recorder.flush(store, ledger)
    (seq,) = ledger.append([forged()])  # correct leaf hash and tree head: audit's own append
    restarted = service(tmp_path, store, ledger)
    with pytest.raises(LedgerIntegrityError, match=rf"event {seq} .*t-forged:transfer.approved"):
        restarted.check_start()
    with pytest.raises(LedgerIntegrityError):
        first.checkpoint_now()
    assert all(s.checkpoint.size <= seq for s in [first._checkpointer.last]  # type: ignore
               if s is not None)


def test_a_forged_event_under_a_recorded_key_is_refused(tmp_path: Path,
                                                        parts: tuple[Store, Ledger]) -> None:
    store, ledger = parts
    recorder.flush(store, ledger)  # this gateway keeps its record from the start
    drafts = transfer_events(1)
    store.record(drafts)
    # The forger writes the gateway's pending event first, with other data, under its key.
    ledger.append([Draft(**{**drafts[0].__dict__, "data": {"forged": True}})])
    recorder.flush(store, ledger)  # idempotent by key: the forged bytes stay
    with pytest.raises(LedgerIntegrityError, match="event 0"):
        service(tmp_path, store, ledger).check_start()


def test_a_crash_between_the_append_and_the_record_is_no_alarm(
        tmp_path: Path, parts: tuple[Store, Ledger]) -> None:
    store, ledger = parts
    store.record(transfer_events(3))
    ledger.append(store.pending())  # appended; the record and the pending rows unchanged
    svc = service(tmp_path, store, ledger)
    svc.check_start()
    assert recorder.flush(store, ledger) == 3  # re-appended idempotently, now recorded
    assert ledger.size() == 3
    signed = svc.checkpoint_now()
    assert signed is not None and signed.checkpoint.size == 3


def test_a_state_from_before_the_record_is_adopted_once(
        tmp_path: Path, parts: tuple[Store, Ledger], caplog: pytest.LogCaptureFixture) -> None:
    store, ledger = parts
    ledger.append(transfer_events(4))  # written by a version that kept no record
    svc = service(tmp_path, store, ledger)
    svc.check_start()
    assert "predate the record" in caplog.text
    assert svc.checkpoint_now() is not None
    ledger.append([forged()])  # from now on, the record is kept: a forgery is refused
    with pytest.raises(LedgerIntegrityError, match="event 4"):
        service(tmp_path, store, ledger).check_start()


def test_what_a_checkpoint_covers_is_pruned(tmp_path: Path, parts: tuple[Store, Ledger]) -> None:
    store, ledger = parts
    store.record(transfer_events(5))
    recorder.flush(store, ledger)
    db = tmp_path / "state" / "state.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM ledger_moved").fetchone()[0] == 5
    service(tmp_path, store, ledger).checkpoint_now()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM ledger_moved").fetchone()[0] == 0


@pytest.mark.slow
def test_the_daemon_refuses_to_start_on_a_forged_event_and_signs_nothing_of_it(
        demo: Demo) -> None:
    demo.start()
    demo.drop("a.csv", csv_bytes(GOOD_ROWS))
    demo.wait_state("awaiting_approval")
    assert demo.stop() == 0
    demo.start()  # a normal restart is no alarm
    assert demo.stop() == 0
    ledger = Ledger.open(demo.ledger)
    (seq,) = ledger.append([forged()])  # while the daemon is stopped
    ledger.close()
    demo.start()
    assert demo.daemon is not None and demo.daemon.wait(timeout=120) == 1
    demo.daemon = None
    log = demo.daemon_log()
    assert "NOT intact" in log and f"event {seq}" in log and "t-forged:transfer.approved" in log
    refused = demo.cli("audit", "checkpoint")
    assert refused.returncode == 1 and f"event {seq}" in refused.stderr
    notes = (demo.root / "state" / "checkpoints" / "checkpoint").read_text().splitlines()
    assert int(notes[1]) <= seq  # the latest checkpoint does not cover it


@pytest.mark.slow
def test_kill_9_while_running_then_restart_is_no_alarm(demo: Demo) -> None:
    demo.start(env={ENV: "after-ledger-append"})
    demo.drop("a.csv", csv_bytes(GOOD_ROWS))
    assert demo.daemon is not None and demo.daemon.wait(timeout=120) == -signal.SIGKILL
    demo.daemon = None
    demo.start()
    demo.wait_state("awaiting_approval")
    demo.drop("b.csv", csv_bytes(GOOD_ROWS))
    demo.wait_state("awaiting_approval", count=2)
    assert demo.daemon is not None
    demo.daemon.kill()
    demo.daemon.wait()
    demo.daemon = None
    demo.start()
    assert demo.daemon is not None and demo.daemon.poll() is None
    assert demo.stop() == 0
    assert demo.cli("audit", "verify").returncode == 0
