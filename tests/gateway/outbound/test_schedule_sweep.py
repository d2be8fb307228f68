"""`late` events (seed 000 記1(2)): a monthly provision not delivered by its due date."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from gateway import bootstrap
from gateway.config.settings import load_settings
from gateway.outbound.schedule_sweep import SINCE_FILE, sweep_late
from gateway.runtime import Runtime


def _runtime(tmp_path: Path, since: str | None) -> Runtime:
    bootstrap.init(tmp_path / "gw", demo=True)
    rt = Runtime.open(load_settings(tmp_path / "gw" / "tachiai.toml"))
    if since:
        (rt.settings.state_dir / SINCE_FILE).write_text(since)
    return rt


def _late(rt: Runtime) -> list[dict[str, object]]:
    return [dict(e.data) for e in rt.ledger.events() if e.kind == "late"]


def test_a_new_installation_calls_nothing_late(tmp_path: Path) -> None:
    rt = _runtime(tmp_path, since=None)
    assert sweep_late(rt, dt.date(2026, 11, 22)) == 0
    assert (rt.settings.state_dir / SINCE_FILE).read_text() == "2026-11-22"


def test_a_delivery_fills_the_oldest_owed_period(tmp_path: Path) -> None:
    from gateway.identity import sshkeys, sshsig
    from gateway.outbound import approvals, pipeline
    from gateway.outbound.intake import Outbox
    from tests.conftest import GOOD_ROWS, csv_bytes

    rt = _runtime(tmp_path, since="2026-08-01")
    outbox = rt.settings.outbox("isa-nhi-status-loss", "monthly")
    outbox.mkdir(parents=True, exist_ok=True)
    (outbox / "a.csv").write_bytes(csv_bytes(GOOD_ROWS))
    t = pipeline.take_in(rt, Outbox("isa-nhi-status-loss", "monthly", outbox), outbox / "a.csv")
    assert t is not None and t.state == "awaiting_approval"
    key = sshkeys.load_private_key(tmp_path / "gw" / "demo" / "keys" / "suzuki")
    approvals.approve(rt, t.id, sshsig.sign(approvals.statement(rt, t), key, "tachiai-approval"))
    assert pipeline.advance(rt, rt.store.get(t.id)).state == "delivered"
    sweep_late(rt, dt.date(2026, 11, 22))
    # Delivered today (in real time), it fills 2026-07, the oldest owed period.
    assert [e["period"] for e in _late(rt)] == ["2026-08", "2026-09"]


def test_every_period_past_its_due_date_is_late_once(tmp_path: Path) -> None:
    rt = _runtime(tmp_path, since="2026-08-01")
    # Due dates since 2026-08-01: 2026-07 → 08-28, 2026-08 → 09-29, 2026-09 → 10-29,
    # 2026-10 → 11-27 (Nov 30 is the last business day; not yet due on 11-22).
    assert sweep_late(rt, dt.date(2026, 11, 22)) == 3
    late = _late(rt)
    assert [e["period"] for e in late] == ["2026-07", "2026-08", "2026-09"]
    assert [e["due"] for e in late] == ["2026-08-28", "2026-09-29", "2026-10-29"]
    reason = late[0]["reason"]
    assert isinstance(reason, dict) and reason["rule"] == "schedule.late"
    assert "isa-nhi-status-loss" in json.dumps(reason)
    # The due day itself is still in time; a second sweep records nothing new.
    sweep_late(rt, dt.date(2026, 11, 27))
    assert len(_late(rt)) == 3
    sweep_late(rt, dt.date(2026, 11, 28))
    assert [e["period"] for e in _late(rt)][-1] == "2026-10"
