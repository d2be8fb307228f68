"""The notification sweep of the sending side: who must be told what, now.

- a transfer awaits approval → each designated witness of its flow who has not approved it;
  again every `remind_after_hours` while it waits (a reminder); a transfer back before its
  witnesses because the same bytes were delivered after they approved → each of them again;
- a transfer was rejected, delivered, failed or expired → its sender (a rejection by rule, row
  and column, never a value).
Expiry (`gateway.outbound.expiry`) runs first. Each notice is sent once per person and channel
(`gateway.exchange.notices`); the daemon calls `sweep_due` on every turn of its loop and the
sweep itself runs at most every `sweep_seconds`. Finished transfers older than the first sweep
(`<state>/notify-since`) are never announced, so enabling notifications does not replay history.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from gateway.errors import TachiaiError
from gateway.exchange.notices import Notice, deliver
from gateway.outbound import duplicates, expiry
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime
from gateway.state import clock
from gateway.state.spool import write_atomic
from gateway.state.store import Transfer
from policies.handlers import Handler

log = logging.getLogger(__name__)

SINCE_FILE = "notify-since"
_HOUR_NS = 3600 * 1_000_000_000
#: Finished transfers are announced only this long after their last change: the sweep reads
#: few of them even on a gateway with years of history.
_LOOKBACK_NS = 7 * 24 * _HOUR_NS
_SENDER_KINDS = {
    State.REJECTED: "transfer.rejected", State.DELIVERED: "transfer.delivered",
    State.ACKNOWLEDGED: "transfer.delivered", State.FAILED: "transfer.failed",
    State.EXPIRED: "transfer.expired",
}
_next_sweep = 0.0  # monotonic time of this process's next sweep


def sweep_due(rt: Runtime) -> None:
    """Sweep when `[notify] sweep_seconds` have passed since the last sweep. Never raises: a
    failure is logged and the sweep runs again next time."""
    global _next_sweep
    cfg = rt.settings.notify
    if not cfg.channels and cfg.approval_window_hours <= 0 and not cfg.flow_windows:
        return
    if time.monotonic() < _next_sweep:
        return
    _next_sweep = time.monotonic() + cfg.sweep_seconds
    try:
        sweep(rt)
    except TachiaiError as exc:
        log.error("the notification sweep failed: %s", exc.diagnostics())


def sweep(rt: Runtime, now_ns: int | None = None) -> list[tuple[Notice, str]]:
    """Expire what waited too long, then send every notice not yet sent; return those sent.

    Raises:
        StorageError: the state database or the ledger cannot be read or written.
    """
    now = now_ns if now_ns is not None else clock.now_ns()
    expiry.expire_overdue(rt, now)
    if not rt.settings.notify.channels:
        return []
    since = max(tracking_since(rt, now), now - _LOOKBACK_NS)
    notices: list[Notice] = []
    for transfer in rt.store.in_states([State.AWAITING_APPROVAL]):
        notices.extend(waiting_notices(rt, transfer, now))
    for transfer in rt.store.in_states(list(_SENDER_KINDS)):
        if transfer.updated_ns >= since and transfer.sender is not None:
            notices.append(sender_notice(transfer))
    return deliver(rt, notices)


def tracking_since(rt: Runtime, now_ns: int) -> int:
    """When this gateway began to notify (ns), recorded on its first sweep."""
    path = rt.settings.state_dir / SINCE_FILE
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (FileNotFoundError, ValueError):
        write_atomic(path, str(now_ns).encode("ascii"), mode=0o644)
        return now_ns


def witnesses_of(rt: Runtime, transfer: Transfer, on: dt.date) -> list[Handler]:
    """The designated witnesses of the transfer's flow who may approve it on `on` and have not:
    of the providing party, designated for the agreement, not its sender."""
    approved = {a.witness for a in rt.store.approvals(transfer.id)}
    return [h for h in rt.registry.handlers
            if h.party == transfer.provider and h.designated(transfer.agreement, "witness", on)
            and h.name != transfer.sender and h.name not in approved]


def waiting_notices(rt: Runtime, transfer: Transfer, now_ns: int) -> list[Notice]:
    """One notice per witness still to approve: the first, or the latest reminder due."""
    cfg = rt.settings.notify
    _agreement, flow = rt.agreement_flow(transfer.agreement, transfer.flow)
    approvals = rt.store.approvals(transfer.id)
    earlier = duplicates.earlier_delivery(rt, transfer)
    facts: dict[str, Any] = {
        "size": transfer.size, "rows": transfer.rows, "sender": transfer.sender,
        "approvals": len(approvals), "required": flow.witnesses,
        "waiting_since": clock.iso(transfer.updated_ns),
    }
    deadline = expiry.deadline_ns(rt, transfer)
    if deadline is not None:
        facts["expires"] = clock.iso(deadline)
    if earlier is not None:
        facts["duplicate_of"] = earlier.id  # the same bytes were delivered before
    round_ = 0
    if cfg.remind_after_hours > 0:
        round_ = int((now_ns - transfer.updated_ns) // (cfg.remind_after_hours * _HOUR_NS))
    kind = "approval.reminder" if round_ else "approval.waiting"
    if duplicates.waits_again(transfer):
        # Its approvals were set aside (gateway.outbound.reapproval): a notice of its own kind,
        # its reminders too, since the first wait's were already sent.
        kind = "approval.again"
        facts["set_aside"] = len(rt.store.approvals_set_aside(transfer.id))
    # Commands only, "; " between them: the mail says what they are for, in its language.
    command = (f"tachiai transfers statement {transfer.id}; tachiai approve {transfer.id} "
               f"--key KEY{' --duplicate-ok' if earlier else ''}; tachiai reject "
               f"{transfer.id} --key KEY --reason TEXT")
    on = dt.datetime.fromtimestamp(now_ns / 1e9, clock.JST).date()
    return [Notice(kind, transfer.id, transfer.agreement, transfer.flow, transfer.state, w.name,
                   command, facts, round_) for w in witnesses_of(rt, transfer, on)]


def sender_notice(transfer: Transfer) -> Notice:
    """The sender is told how their transfer ended: rule ids and places, never values."""
    assert transfer.sender is not None
    kind = _SENDER_KINDS[transfer.status]
    facts: dict[str, Any] = {"size": transfer.size, "rows": transfer.rows,
                             "at": clock.iso(transfer.updated_ns)}
    if transfer.status in (State.REJECTED, State.EXPIRED, State.FAILED):
        facts["reasons"] = [
            {k: r[k] for k in ("rule", "row", "column") if k in r} for r in transfer.reason_list()
        ]
        facts["reason_count"] = len(transfer.reason_list())
    if transfer.status is State.FAILED:
        facts["attempts"] = transfer.attempts
    nxt = {
        "transfer.rejected": f"tachiai transfers show {transfer.id}",
        "transfer.expired": f"tachiai transfers show {transfer.id}",
        "transfer.failed": f"tachiai transfers show {transfer.id}; tachiai transfers retry "
                           f"{transfer.id}",
        "transfer.delivered": "",
    }[kind]
    return Notice(kind, transfer.id, transfer.agreement, transfer.flow, transfer.state,
                  transfer.sender, nxt, facts)
