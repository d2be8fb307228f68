"""A duplicate that appeared after approval (承認後の重複送信): the witnesses decide again.

Two transfers with the same bytes approved at about the same time: once the first is delivered,
the second's statement gains its `duplicate-of` line (gateway.outbound.duplicates) and the
signatures given over the statement without it no longer verify at sealing. When that line alone
is why, the transfer is not rejected: its approvals are set aside (kept in the state database
with when and why, and named in the ledger) and it waits for its witnesses again, who read the
new statement and approve it with `--duplicate-ok` or reject it. Anything else that stops a
signature from counting stays a rejection (`approval.missing`, `approvals.authorize`). No
approval is ever counted here: this only takes them away.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from gateway.exchange.words import DUPLICATE_KEY
from gateway.outbound import approvals, duplicates
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime, event
from gateway.state import clock
from gateway.state.rows import Transfer
from policies.approvals import quorum_reached

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Appeared:
    """The delivery that changed the statement, and which approvals it left standing."""

    earlier: Transfer  # the transfer the statement names now
    signed_over: tuple[str | None, ...]  # the duplicate-of lines the stale ones were given with
    stale: tuple[str, ...]  # whose approvals count only over the statement as it was
    standing: frozenset[int]  # the approvals (ids) that still count over the new statement


def appeared(rt: Runtime, transfer: Transfer, sha256: str, size: int) -> Appeared | None:
    """The duplicate whose line alone stops the stored approvals from reaching the quorum, or
    None.

    Only when the statement of the sealed bytes names an earlier delivery, some approvals count
    over that same statement as it read when they were given (without the line, or naming
    another delivery of the same bytes), and those with the ones that count over the new
    statement reach the quorum. Each is checked as at sealing (signature verified, key a
    designated witness's today), so a signature over other bytes, a key no longer designated or
    too few approvals are never this case.
    """
    delivered = duplicates.deliveries(rt, transfer)
    if not delivered:
        return None
    earlier = delivered[0]  # the one the statement names now
    agreement, flow = rt.agreement_flow(transfer.agreement, transfer.flow)
    flow = agreement.flow_for(flow, transfer.provider, transfer.recipient)
    sealed = transfer.model_copy(update={"sha256": sha256, "size": size})
    standing = approvals.counting(rt, sealed, approvals.statement(rt, sealed))
    stale: dict[int, str] = {}
    signed_over: list[str | None] = []
    others = [o.id for o in delivered[1:]]
    for before in (None, *others):
        lines = [] if before is None else [f"{DUPLICATE_KEY}: {before}"]
        found = approvals.counting(rt, sealed, approvals.statement(rt, sealed,
                                                                   duplicate_lines=lines))
        found = {i: name for i, name in found.items() if i not in standing and i not in stale}
        if found:
            stale.update(found)
            signed_over.append(before)
    if not stale or not quorum_reached(flow, {*standing.values(), *stale.values()},
                                       transfer.sender):
        return None
    return Appeared(earlier, tuple(signed_over), tuple(stale.values()), frozenset(standing))


def return_to_witnesses(rt: Runtime, transfer: Transfer, found: Appeared) -> Transfer:
    """Set the transfer's stale approvals aside and put it back before its witnesses, approved →
    awaiting_approval, with one `approval.voided` event naming both transfers, the approvals
    set aside and the new statement; the reason says why it waits again and what to do.

    Raises:
        StateError: another process moved the transfer meanwhile (nothing changed).
        StorageError: the state database cannot be written.
    """
    now = clock.now_ns()
    reason = duplicates.appeared(found.earlier, transfer, found.stale)
    message = approvals.statement(rt, transfer)
    with rt.store.transaction() as conn:
        moved = rt.store.set_aside_approvals(conn, transfer.id, duplicates.APPEARED,
                                             found.earlier.id, now, keep=found.standing)
        after = rt.store.transition(transfer, State.AWAITING_APPROVAL, [event(
            "approval.voided", transfer, {
                "rule": duplicates.APPEARED, "duplicate_of": found.earlier.id,
                "signed_duplicate_of": list(found.signed_over),
                "set_aside": [{"witness": a.witness, "fingerprint": a.fingerprint,
                               "approved": clock.iso(a.created_ns)} for a in moved],
                "standing": len(found.standing),
                "statement": message.decode("utf-8"), "reasons": [reason],
            }, key=f"{transfer.id}:approval.voided:{now}", time_ns=now)], conn,
            reasons=json.dumps([*duplicates.other_reasons(transfer), reason],
                               ensure_ascii=False))
    log.warning("transfer %s waits for its witnesses again: %s with the same bytes was "
                "delivered after it was approved", transfer.id, found.earlier.id)
    return after
