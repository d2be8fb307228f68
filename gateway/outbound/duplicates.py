"""The duplicate notice (重複送信の確認): a file whose SHA-256 was already delivered on the same
flow is held for an explicit decision, never silently sent twice.

The witnesses' statement names the earlier transfer (only when there is one, so every other
statement keeps exactly its lines), and an approval counts only when the witness says
`--duplicate-ok`, which the approval event records. This module decides and words; it changes
no state.
"""

from __future__ import annotations

from gateway.exchange.words import DUPLICATE_KEY
from gateway.i18n import N_
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime
from gateway.state.rows import Transfer
from policies.reasons import Reason

#: Once delivered, a transfer stays delivered or acknowledged: the statement line, once there,
#: never goes away (a line appearing after approval voids it at sealing: fail closed).
_DELIVERED = (State.DELIVERED, State.ACKNOWLEDGED)


def earlier_delivery(rt: Runtime, transfer: Transfer) -> Transfer | None:
    """The first transfer delivered on the same agreement and flow with the same SHA-256."""
    if not transfer.sha256:
        return None
    for other in rt.store.in_states(_DELIVERED):
        if (other.id != transfer.id and other.sha256 == transfer.sha256
                and (other.agreement, other.flow) == (transfer.agreement, transfer.flow)):
            return other
    return None


def statement_lines(rt: Runtime, transfer: Transfer) -> list[str]:
    """The statement's flag line, or nothing when the bytes were never delivered on the flow."""
    earlier = earlier_delivery(rt, transfer)
    return [] if earlier is None else [f"{DUPLICATE_KEY}: {earlier.id}"]


def refusal(earlier: Transfer, transfer: Transfer) -> Reason:
    """Why an approval without `--duplicate-ok` does not count."""
    return Reason(
        "approval.duplicate-file", N_(
            "the same bytes (SHA-256) were already delivered on this flow as transfer "
            "{earlier}; if sending them again is intended, approve with `tachiai approve {id} "
            "--duplicate-ok`, otherwise reject it").format(earlier=earlier.id, id=transfer.id),
        f"{transfer.agreement}/flows.{transfer.flow}")
