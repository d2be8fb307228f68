"""The dispatcher: it queues each claimable transfer that is due once, on the lane of its next
step, and never again while it is queued or running; it leaves alone what another live worker
holds and a delivery whose retry is not yet due."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from gateway import bootstrap
from gateway.config.settings import load_settings
from gateway.faults import ENV
from gateway.runtime import Runtime, event
from gateway.state import claims, clock
from gateway.state.lifecycles import State
from gateway.state.store import Transfer
from gateway.workers import Lane, Workers
from tests.conftest import GOOD_ROWS, Demo, csv_bytes, needs_7zz, sealed_files, wait_for


def _runtime(tmp_path: Path) -> Runtime:
    home = tmp_path / "gw"
    bootstrap.init(home, demo=True)
    return Runtime.open(load_settings(home / "tachiai.toml"))


def _transfer(rt: Runtime, tid: str, state: State, *, created: int, attempts: int = 0,
              updated_ns: int = 1) -> None:
    rt.store.create(Transfer(id=tid, agreement="a", flow="f", recipient="r", state=state.value,
                             file_name="x.csv", source_path="/x", created_ns=created,
                             updated_ns=updated_ns, attempts=attempts), [])


def _queued(pool: Workers) -> list[str]:
    return [job.key for job in list(pool.sealing.jobs.queue)]


def test_a_queued_transfer_is_not_queued_again(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    pool = Workers(rt, threading.Event(), threading.Event())  # lanes not started: jobs stay
    _transfer(rt, "t-1", State.APPROVED, created=1)
    _transfer(rt, "t-2", State.APPROVED, created=2)
    _transfer(rt, "t-held", State.APPROVED, created=3)
    _transfer(rt, "t-waits", State.AWAITING_APPROVAL, created=4)
    live = claims.owner_id("elsewhere", "seal-0")
    assert rt.store.claim("transfer", "t-held", "approved", live, 600)
    pool.dispatch()
    assert _queued(pool) == ["t-1", "t-2"]
    pool.dispatch()
    pool.dispatch()
    assert _queued(pool) == ["t-1", "t-2"], "queued once, however often the dispatcher looks"
    _transfer(rt, "t-3", State.APPROVED, created=5)
    pool.dispatch()
    assert _queued(pool) == ["t-1", "t-2", "t-3"]
    rt.store.engine.dispose()


def test_a_retry_is_queued_when_it_is_due(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    pool = Workers(rt, threading.Event(), threading.Event())
    # Sealed, failed eight times, last tried now: its next try is 256 s away (pipeline.due),
    # more than a busy machine takes to get through this test.
    _transfer(rt, "t-later", State.SEALED, created=1, attempts=8, updated_ns=clock.now_ns())
    pool.dispatch()
    assert pool.delivery == {}, "no delivery lane made for a retry not yet due"
    _transfer(rt, "t-due", State.SEALED, created=2, attempts=2, updated_ns=1)
    pool.stopping.set()  # the lane it makes must not run the job: the daemon is "stopping"
    pool.dispatch()
    assert pool.delivery == {}, "a stopping dispatcher queues nothing"
    pool.stopping.clear()
    lane = pool.delivery["r"] = Lane("deliver-r", 1, pool.node, pool.stopping)  # not started
    pool.dispatch()
    assert [job.key for job in list(lane.jobs.queue)] == ["t-due"]
    assert _queued(pool) == []
    rt.store.engine.dispose()


@pytest.mark.slow
@needs_7zz
def test_a_seal_hands_its_claim_on_and_a_crash_before_the_delivery_loses_nothing(
        demo: Demo) -> None:
    """The sealed move commits the claim of the partner's delivery worker with it, and the
    transfer goes straight onto that lane. Killed between the two, the restarted daemon gives
    the dead worker's claim back and delivers the file exactly once."""
    data = csv_bytes(GOOD_ROWS)
    demo.start()
    demo.drop("file.csv", data)
    (waiting,) = demo.wait_state("awaiting_approval")
    demo.stop()
    result = demo.cli("approve", str(waiting["id"]), "--key", str(demo.key("suzuki")))
    assert result.returncode == 0, result.stderr
    demo.start(env={ENV: "hand-on"})
    assert demo.daemon is not None
    assert demo.daemon.wait(timeout=60) == -signal.SIGKILL
    demo.daemon = None
    with contextlib.closing(sqlite3.connect(demo.state_db)) as db:
        state, recipient, holder = db.execute(
            "SELECT state, recipient, claimed_by FROM transfers").fetchone()
    assert state == "sealed"
    assert holder is not None and holder.endswith(f":deliver-{recipient}-0"), holder
    demo.start()
    (done,) = demo.wait_state("delivered", timeout=60)
    assert len(sealed_files(demo.inbox)) == 1, "delivered exactly once"
    assert done["id"] == waiting["id"]
    log = demo.cli("audit", "log").stdout
    assert log.count("transfer.sealed") == 1
    assert log.count("transfer.delivered") == 1
    assert demo.stop() == 0


def test_the_flusher_moves_every_pending_event_in_few_appends(tmp_path: Path) -> None:
    """Steps ask the flusher and go on; what they queued reaches the ledger, each event once,
    and asks made while a flush runs are answered together."""
    rt = _runtime(tmp_path)
    stopping = threading.Event()
    pool = Workers(rt, stopping, threading.Event())
    appends: list[int] = []
    append = rt.ledger.append

    def counted(drafts):  # type: ignore[no-untyped-def]
        appends.append(len(drafts))
        return append(drafts)

    rt.ledger.append = counted  # type: ignore[method-assign]
    before = rt.ledger.size()
    t = Transfer(id="t-1", agreement="a", flow="f", recipient="r", state="dropped",
                 file_name="x.csv", source_path="/x", created_ns=1, updated_ns=1)
    pool.flusher.start()
    try:
        for n in range(30):
            rt.store.record([event("test.noted", t, {"n": n}, key=f"t-1:noted:{n}")])
            pool.flusher.request()
        wait_for(lambda: not rt.store.pending(), 60, "the flusher to move every event")
    finally:
        stopping.set()
        pool.flusher.join(time.monotonic() + 30)
    assert rt.ledger.size() - before == 30
    assert sum(appends) == 30, "each event appended once"
    assert len(appends) < 30, f"asks answered together ({appends})"
    assert [e.data["n"] for e in rt.ledger.events(before)] == list(range(30))
    rt.store.engine.dispose()
