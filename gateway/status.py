"""What waits for whom (`tachiai status`): approvals by witness, failed deliveries, holdings near
or past their deadline, late provisions (on a flow to a party group, per member), checkpoint
places that fail, and what the daemons are working on now (a large file's check, seal or
upload: `gateway.progress`).

Gathered from both halves, which never import each other, so it lives above them; read-only
(it records no event and writes no state). Values are ids, names, times, counts and reasons —
the same a person sees in `transfers show` — with stable JSON keys.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from audit.errors import AuditError
from audit.query import Query, search
from gateway import progress
from gateway.errors import StorageError
from gateway.evidence.places import places
from gateway.i18n import N_
from gateway.inbound import holdings
from gateway.outbound import duplicates, expiry, schedule_sweep
from gateway.outbound.lifecycle import State
from gateway.outbound.notices import witnesses_of
from gateway.runtime import Runtime
from gateway.state import clock
from gateway.state.store import Transfer
from policies.retention import disposal_deadline

#: Holdings are shown from this many days before their deadline when `[inbound] remind_days`
#: names no earlier day.
NEAR_DAYS = 14


def gather(rt: Runtime, today: dt.date | None = None) -> dict[str, list[dict[str, Any]]]:
    """Everything `tachiai status` shows, by section.

    Raises:
        StorageError: the state database or the ledger cannot be read.
    """
    today = today or clock.today()
    return {
        "awaiting_approval": [_waiting(rt, t, today)
                              for t in rt.store.in_states([State.AWAITING_APPROVAL])],
        "failed": [_failed(rt, t) for t in rt.store.in_states([State.FAILED])],
        "holdings": _holdings(rt, today),
        "late": [{"agreement": a.id, "flow": f.id, "period": str(o.period),
                  "due": o.due.isoformat(), "rule": o.reason.rule, "member": None}
                 for a, f, o in schedule_sweep.late_provisions(rt, today, record_since=False)]
        # On a flow to a party group, each member's part (or the whole period) on its own.
        + [{"agreement": a.id, "flow": f.id, "period": str(p.period), "due": p.due.isoformat(),
            "rule": p.reason.rule, "member": p.member or None}
           for a, f, p in schedule_sweep.late_member_parts(rt, today, record_since=False)],
        "checkpoints": [{"place": p.place, "status": p.status, "failing": p.failing,
                         "latest": clock.iso(p.latest_ns) if p.latest_ns else None}
                        for p in places(rt.settings, rt.ledger)],
        "working_on": [r.as_dict() for r in progress.live(rt.settings.state_dir)],
    }


def _waiting(rt: Runtime, t: Transfer, today: dt.date) -> dict[str, Any]:
    _agreement, flow = rt.agreement_flow(t.agreement, t.flow)
    earlier = duplicates.earlier_delivery(rt, t)
    deadline = expiry.deadline_ns(rt, t)
    return {
        "id": t.id, "agreement": t.agreement, "flow": t.flow, "file_name": t.file_name,
        "size": t.size, "sender": t.sender, "since": clock.iso(t.updated_ns),
        "expires": clock.iso(deadline) if deadline is not None else None,
        "approvals": [a.witness for a in rt.store.approvals(t.id)], "required": flow.witnesses,
        "witnesses": [h.name for h in witnesses_of(rt, t, today)],
        "duplicate_of": earlier.id if earlier else None,
    }


def _failed(rt: Runtime, t: Transfer) -> dict[str, Any]:
    try:
        found = list(search(rt.ledger, Query(kind="transfer.failed", subject=t.id)))
    except AuditError as exc:
        raise StorageError(N_("cannot read the ledger: {error}").format(error=exc)) from exc
    reason = str(found[-1].data.get("error", "")) if found else ""
    return {"id": t.id, "agreement": t.agreement, "flow": t.flow, "file_name": t.file_name,
            "size": t.size, "attempts": t.attempts, "since": clock.iso(t.updated_ns),
            "reason": reason or "-", "next": f"tachiai transfers retry {t.id}"}


def _holdings(rt: Runtime, today: dt.date) -> list[dict[str, Any]]:
    near = max((*rt.settings.inbound.remind_days, NEAR_DAYS))
    out: list[dict[str, Any]] = []
    for h in holdings.find(rt, states=holdings.HELD):
        deadline = h.deadline
        agreement = rt.agreements.get(h.agreement or "")
        if deadline is None and agreement is not None and h.received_on is not None:
            found = disposal_deadline(agreement, dt.date.fromisoformat(h.received_on))
            deadline = found.isoformat() if found else None
        if deadline is None:
            continue
        days_left = (dt.date.fromisoformat(deadline) - today).days
        if days_left > near:
            continue
        out.append({"id": h.id, "agreement": h.agreement, "flow": h.flow, "state": h.state,
                    "file_name": h.file_name or h.delivered_name, "size": h.size,
                    "deadline": deadline, "days_left": days_left,
                    "overdue": holdings.is_overdue(h, today) or days_left < 0,
                    "handlers": h.names("handlers")})
    return out
