"""Late or missing parts per member (提供遅延, per 国保連合会): on a monthly flow to a party group,
a period nothing was forwarded for is late as a whole, and once it is forwarded each member whose
part is not delivered by the due date is late on its own, in `tachiai status` (and `--json`), in
the ledger's `late` events and in the handling report.

Real pipeline steps over the chain's gateways (isa → nhi-central → three federations' inboxes);
the flow to the federations is given a monthly due date in the test's copy of the agreement.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from audit.report import Period as ReportPeriod
from audit.report import build
from audit.report_render import markdown
from gateway import forwarding
from gateway.cli import main
from gateway.outbound import pipeline
from gateway.outbound.lifecycle import State
from gateway.outbound.schedule_sweep import SINCE_FILE, late_member_parts, sweep_late
from gateway.runtime import Runtime
from gateway.state import clock
from gateway.status import gather
from policies.calendar import Period
from policies.schedule import due_date
from tests.gateway.forwarding.test_fanout import (
    CODE,
    FLOW,
    MEMBERS,
    ROWS,
    Chain,
    _approve_all,
    _held,
    chain,
)
from tests.gateway.inbound.test_holdings_pair import AGREEMENT

__all__ = ["chain"]

SCHEDULE = 'schedule = { every = "month", due = "next-month-last-business-day" }'


def _scheduled(chain: Chain) -> tuple[Runtime, Period]:
    """The central association's gateway with a due date on the flow to the federations, and
    tracking begun so that exactly one period (the latest already due) is owed today."""
    path = chain.base / "agreements" / f"{AGREEMENT}.toml"
    text = path.read_text(encoding="utf-8")
    flow = f'id = "{FLOW}"'
    assert text.count(flow) == 1
    head, tail = text.split(flow, 1)
    path.write_text(head + flow + "\n" + SCHEDULE + tail, encoding="utf-8")
    rt = chain.pair.recipient.reopen()
    agreement = rt.agreements[AGREEMENT]
    today = clock.today()
    index = today.year * 12 + today.month - 1
    period = Period(index // 12, index % 12 + 1)
    while due_date(agreement, agreement.flow(FLOW), period) >= today:
        index -= 1
        period = Period(index // 12, index % 12 + 1)
    since = due_date(agreement, agreement.flow(FLOW), period)
    (rt.settings.state_dir / SINCE_FILE).write_text(since.isoformat(), encoding="ascii")
    return rt, period


def _late(rt: Runtime, today: dt.date | None = None) -> list[tuple[str, str, str]]:
    return [(str(p.period), p.member, p.reason.rule)
            for _a, _f, p in late_member_parts(rt, today or clock.today(), record_since=False)]


def test_each_members_part_is_late_on_its_own_until_it_is_delivered(
    chain: Chain, capsys: pytest.CaptureFixture[str]
) -> None:
    rt, period = _scheduled(chain)
    p = str(period)
    # Nothing forwarded for the period: the whole period is late, named by no member.
    assert _late(rt) == [(p, "", "schedule.late")]
    (entry,) = [x for x in gather(rt)["late"] if x["flow"] == FLOW]
    assert (entry["period"], entry["member"], entry["rule"]) == (p, None, "schedule.late")
    # On its due date itself nothing is late yet (「…までに」).
    due = due_date(rt.agreements[AGREEMENT], rt.agreements[AGREEMENT].flow(FLOW), period)
    assert _late(rt, due) == []

    h = _held(chain, ROWS)
    fanout, _children = forwarding.forward(rt, h.id, FLOW, CODE)
    assert _late(rt) == [(p, m, "schedule.part-late") for m in MEMBERS]
    _approve_all(chain, fanout.id)
    tokyo = next(c for c in fanout.children if c.member == "nhi-federations-13")
    for child in fanout.children:
        if child is not tokyo:
            done = pipeline.advance(rt, rt.store.get(child.transfer))
            assert done.status is State.DELIVERED, done.reasons
    assert _late(rt) == [(p, "nhi-federations-13", "schedule.part-late")]

    # The sweep records it once, naming the member; status and the report show it.
    sweep_late(rt)
    sweep_late(rt)
    events = [e.data for e in rt.ledger.events()
              if e.kind == "late" and e.data["flow"] == FLOW]
    assert [(e["period"], e["member"]) for e in events] == [(p, "nhi-federations-13")]
    assert "TEST" not in json.dumps(events, ensure_ascii=False)
    config = str(chain.pair.recipient.root / "tachiai.toml")
    capsys.readouterr()
    assert main(["--config", config, "status", "--json"]) == 0
    late = [x for x in json.loads(capsys.readouterr().out)["late"] if x["flow"] == FLOW]
    assert [(x["member"], x["rule"]) for x in late] == [("nhi-federations-13",
                                                         "schedule.part-late")]
    assert main(["--config", config, "status"]) == 0
    assert f"{AGREEMENT}/{FLOW} → nhi-federations-13" in capsys.readouterr().out
    report = markdown(build(rt.ledger, AGREEMENT,
                            ReportPeriod.parse(clock.today().strftime("%Y-%m")),
                            now_ns=clock.now_ns(), verification=None))
    assert f"{FLOW} → nhi-federations-13" in report.split("5. ", 1)[1]
    parts = report.split("5-2.", 1)[1].split("\n## ", 1)[0]
    assert "| nhi-federations-13 | 2 |" in parts and "未送付 (not delivered)" in parts
    assert parts.count("未送付") == 1

    done = pipeline.advance(rt, rt.store.get(tokyo.transfer))
    assert done.status is State.DELIVERED
    assert _late(rt) == []
