"""The approval window (承認期限): a transfer not approved in time expires.

awaiting_approval ─▶ expired, with a `transfer.expired` event naming the window; the file stays
in the spool (never deleted silently) and approvals given later count nothing. The window is
`[notify] approval_window_hours`, per flow `flow_windows` (gateway.config.notify); it runs from
the moment the transfer began to wait (its last recorded change). Without a window nothing
expires.
"""

from __future__ import annotations

import json
import logging

from gateway.errors import StateError
from gateway.i18n import N_
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime, event
from gateway.state import clock
from gateway.state.store import Transfer
from policies.reasons import Reason

log = logging.getLogger(__name__)

_HOUR_NS = 3600 * 1_000_000_000


def deadline_ns(rt: Runtime, transfer: Transfer) -> int | None:
    """When a waiting transfer expires (ns), or None when its flow has no window."""
    hours = rt.settings.notify.window_hours(transfer.agreement, transfer.flow)
    return None if hours <= 0 else transfer.updated_ns + int(hours * _HOUR_NS)


def expire_overdue(rt: Runtime, now_ns: int | None = None) -> list[Transfer]:
    """Expire every transfer that waited for approval past its window; return them.

    A transfer approved (or rejected) meanwhile by another process is left as it is.

    Raises:
        StorageError: the state database cannot be written.
    """
    now = now_ns if now_ns is not None else clock.now_ns()
    expired: list[Transfer] = []
    for transfer in rt.store.in_states([State.AWAITING_APPROVAL]):
        deadline = deadline_ns(rt, transfer)
        if deadline is None or now < deadline:
            continue
        hours = rt.settings.notify.window_hours(transfer.agreement, transfer.flow)
        _agreement, flow = rt.agreement_flow(transfer.agreement, transfer.flow)
        reason = Reason("approval.window", N_(
            "not approved by {witnesses} witness(es) within the approval window of {hours} "
            "hour(s); the file stays in the spool. Drop it again to have it approved anew").format(
                witnesses=flow.witnesses, hours=f"{hours:g}"), "notify.approval_window_hours")
        approved_by = [a.witness for a in rt.store.approvals(transfer.id)]
        try:
            after = rt.store.transition(transfer, State.EXPIRED, [event(
                "transfer.expired", transfer, {
                    "window_seconds": int(hours * 3600),
                    "waiting_since": clock.iso(transfer.updated_ns),
                    "approvals": approved_by, "required": flow.witnesses,
                    "reasons": [reason.as_dict()]}, actor=transfer.sender, time_ns=now)],
                reasons=json.dumps([reason.as_dict()], ensure_ascii=False), updated_ns=now)
        except StateError:
            continue  # approved or rejected by someone else first
        log.warning("transfer %s expired: not approved within %g hour(s)", transfer.id, hours)
        expired.append(after)
    if expired:
        rt.flush()
    return expired
