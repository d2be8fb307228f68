"""The duplicate notice (重複送信の確認): a file whose SHA-256 was already delivered on the same
flow is held for an explicit decision, never silently sent twice.

The witnesses' statement names the earlier transfer (only when there is one, so every other
statement keeps exactly its lines), and an approval counts only when the witness says
`--duplicate-ok`, which the approval event records. This module decides and words; it changes
no state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.exchange.words import DUPLICATE_KEY
from gateway.i18n import N_
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime
from gateway.state.rows import Transfer
from policies.reasons import Reason

#: Once delivered, a transfer stays delivered or acknowledged: the statement line, once there,
#: never goes away (a line appearing after approval sends the transfer back to its witnesses at
#: sealing: gateway.outbound.reapproval).
_DELIVERED = (State.DELIVERED, State.ACKNOWLEDGED)
#: The rule of a transfer waiting for its witnesses again: its approvals were set aside because
#: the same bytes were delivered after they were given (gateway.outbound.reapproval).
APPEARED = "approval.duplicate-appeared"


def earlier_delivery(rt: Runtime, transfer: Transfer) -> Transfer | None:
    """The first transfer delivered on the same agreement and flow with the same SHA-256."""
    return next(iter(deliveries(rt, transfer)), None)


def deliveries(rt: Runtime, transfer: Transfer) -> list[Transfer]:
    """Every other transfer delivered on the same agreement and flow with the same SHA-256,
    the one the statement names first."""
    if not transfer.sha256:
        return []
    return [other for other in rt.store.same_bytes(transfer.sha256, transfer.agreement,
                                                   transfer.flow, _DELIVERED)
            if other.id != transfer.id]


def waits_again(transfer: Transfer) -> bool:
    """Whether the transfer waits for its witnesses again, its approvals set aside."""
    return any(r.get("rule") == APPEARED for r in transfer.reason_list())


def other_reasons(transfer: Transfer) -> list[dict[str, Any]]:
    """The transfer's reasons but why it waits for its witnesses again (answered by their
    new decision)."""
    return [r for r in transfer.reason_list() if r.get("rule") != APPEARED]


def statement_lines(rt: Runtime, transfer: Transfer) -> list[str]:
    """The statement's flag line, or nothing when the bytes were never delivered on the flow."""
    return lines_of(earlier_delivery(rt, transfer))


def lines_of(earlier: Transfer | None) -> list[str]:
    """The statement's flag line naming `earlier` (`earlier_delivery`), nothing for None."""
    return [] if earlier is None else [f"{DUPLICATE_KEY}: {earlier.id}"]


def refusal(earlier: Transfer, transfer: Transfer) -> Reason:
    """Why an approval without `--duplicate-ok` does not count."""
    return Reason(
        "approval.duplicate-file", N_(
            "the same bytes (SHA-256) were already delivered on this flow as transfer "
            "{earlier}; if sending them again is intended, approve with `tachiai approve {id} "
            "--duplicate-ok`, otherwise reject it").format(earlier=earlier.id, id=transfer.id),
        f"{transfer.agreement}/flows.{transfer.flow}")


def appeared(earlier: Transfer, transfer: Transfer, witnesses: Sequence[str]) -> dict[str, Any]:
    """Why the transfer waits for its witnesses again, and what they do next (a reason's JSON
    object, as `transfers show` prints it)."""
    reason = Reason(APPEARED, N_(
        "approved by {witnesses}, but transfer {earlier} with the same bytes (SHA-256) was "
        "delivered on this flow after that: the statement now names it (duplicate-of), so those "
        "approvals no longer count (set aside, kept in the ledger) and the witnesses decide "
        "again").format(witnesses=", ".join(witnesses), earlier=earlier.id),
        f"{transfer.agreement}/flows.{transfer.flow}.witnesses")
    return {**reason.as_dict(), "hint": N_(
        "read `tachiai transfers statement {id}`; to send the same data again on purpose, "
        "`tachiai approve {id} --key KEY --duplicate-ok`, otherwise `tachiai reject {id} --key "
        "KEY --reason TEXT`").format(id=transfer.id)}
