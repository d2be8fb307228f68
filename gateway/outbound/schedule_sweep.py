"""The schedule sweep: records a `late` event for each monthly provision not delivered on time.

Which periods were delivered is derived from the delivered transfers (each fills the oldest
owed period, per `policies.schedule.period_for_delivery`); lateness is decided by
`policies.schedule.overdue_periods`. Counting starts on the day this gateway first swept
(`<state>/schedule-since`), so a new installation does not call every past month late.
Events are keyed by agreement, flow and period: sweeping again never records one twice. On a
flow to a party group (国保連合会, 市町村) each fan-out fills a period and each member's part is
late on its own (`policies.schedule.late_parts`): the event names the member.
"""

from __future__ import annotations

import datetime as dt
import logging

from audit.events import Draft
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime
from gateway.state import clock, fanouts
from gateway.state.spool import write_atomic
from policies.agreement import Agreement, Flow
from policies.calendar import Period
from policies.schedule import (
    MAX_PERIODS,
    LatePart,
    Overdue,
    due_date,
    first_period,
    late_parts,
    overdue_periods,
    period_for_delivery,
)

log = logging.getLogger(__name__)

SINCE_FILE = "schedule-since"
_warned: set[str] = set()  # late keys already logged by this process (the ledger has them all)


def tracking_since(rt: Runtime, today: dt.date, *, record: bool = True) -> dt.date:
    """The day deliveries began to be tracked here, recorded on the first sweep (`record`)."""
    path = rt.settings.state_dir / SINCE_FILE
    try:
        return dt.date.fromisoformat(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        if record:
            write_atomic(path, today.isoformat().encode("ascii"), mode=0o644)
        return today


def sweep_late(rt: Runtime, today: dt.date | None = None) -> int:
    """Record `late` for every owed period past its due date; return how many are late now."""
    today = today or clock.today()
    drafts: list[Draft] = []
    for agreement, flow, overdue in late_provisions(rt, today):
        drafts.append(Draft(
            key=f"late:{agreement.id}:{flow.id}:{overdue.period}", kind="late",
            time_ns=clock.now_ns(), subject=f"{agreement.id}/{flow.id}",
            agreement=agreement.id, actor=None,
            data={"flow": flow.id, "period": str(overdue.period),
                  "due": overdue.due.isoformat(), "reason": overdue.reason.as_dict()}))
    for agreement, flow, part in late_member_parts(rt, today):
        drafts.append(Draft(
            key=f"late:{agreement.id}:{flow.id}:{part.period}:{part.member or '*'}",
            kind="late", time_ns=clock.now_ns(), subject=f"{agreement.id}/{flow.id}",
            agreement=agreement.id, actor=None,
            data={"flow": flow.id, "period": str(part.period), "due": part.due.isoformat(),
                  "member": part.member, "reason": part.reason.as_dict()}))
    if drafts:
        rt.store.record(drafts)  # keyed: a period already recorded late is not recorded again
        rt.flush()
        new = [d.key for d in drafts if d.key not in _warned]
        if new:
            _warned.update(new)
            log.warning("%d provision(s) are late: %s", len(new),
                        ", ".join(k.split(":", 1)[1] for k in new[:5]))
    return len(drafts)


def late_provisions(rt: Runtime, today: dt.date, *, record_since: bool = True
                    ) -> list[tuple[Agreement, Flow, Overdue]]:
    """Every owed period of our monthly flows past its due date (read-only but for the first
    sweep's `schedule-since`, which `record_since=False` leaves unwritten)."""
    since = tracking_since(rt, today, record=record_since)
    delivered_transfers = sorted(
        rt.store.in_states([State.DELIVERED, State.ACKNOWLEDGED]), key=lambda t: t.updated_ns)
    out: list[tuple[Agreement, Flow, Overdue]] = []
    for agreement, flow in rt.our_flows():
        if not flow.schedule.monthly or flow.recipient in agreement.groups:
            continue  # a group flow is late per member: late_member_parts
        settled = _settled(agreement, flow, since)
        delivered: set[Period] = set()
        for t in delivered_transfers:
            if (t.agreement, t.flow) != (agreement.id, flow.id):
                continue
            on = dt.datetime.fromtimestamp(t.updated_ns / 1e9, clock.JST).date()
            period = period_for_delivery(agreement, flow, delivered | settled, on)
            if period is not None:
                delivered.add(period)
        out.extend((agreement, flow, overdue)
                   for overdue in overdue_periods(agreement, flow, delivered, today, since=since))
    return out


def late_member_parts(rt: Runtime, today: dt.date, *, record_since: bool = True
                      ) -> list[tuple[Agreement, Flow, LatePart]]:
    """On our monthly flows to a party group: each period nothing was forwarded for, and each
    member's part not delivered, past the due date (read-only but for `schedule-since`)."""
    out: list[tuple[Agreement, Flow, LatePart]] = []
    for agreement, flow in rt.our_flows():
        if not flow.schedule.monthly or flow.recipient not in agreement.groups:
            continue
        since = tracking_since(rt, today, record=record_since)
        made = []
        for f in fanouts.on_flow(rt.store, agreement.id, flow.id):
            parts: dict[str, dt.date | None] = {}
            for child in f.children:
                t = rt.store.get(child.transfer)
                parts[child.member] = (
                    dt.datetime.fromtimestamp(t.updated_ns / 1e9, clock.JST).date()
                    if t.status in (State.DELIVERED, State.ACKNOWLEDGED) else None)
            made.append((dt.datetime.fromtimestamp(f.created_ns / 1e9, clock.JST).date(), parts))
        out.extend((agreement, flow, part) for part in late_parts(
            agreement, flow, made, today, since=since, settled=_settled(agreement, flow, since)))
    return out


def _settled(agreement: Agreement, flow: Flow, since: dt.date) -> set[Period]:
    """Periods due before tracking began: settled outside this gateway, never late here."""
    out: set[Period] = set()
    period = first_period(agreement, flow)
    for _ in range(MAX_PERIODS):
        if due_date(agreement, flow, period) >= since:
            break
        out.add(period)
        period = period.next()
    return out
