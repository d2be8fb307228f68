"""The lifecycles of an outbound transfer and of a holding (保有データ): their states and the only
transitions allowed between them.

transfer: dropped ─▶ quarantined ─▶ awaiting_approval ─▶ approved ─▶ sealed ─▶ delivered ─▶
acknowledged; any step before delivery ─▶ rejected; sealed ─▶ failed ─▶ sealed; a step the
daemon takes (dropped, quarantined, approved) ─▶ failed after repeated internal errors;
awaiting_approval ─▶ expired (its approval window passed); approved ─▶ awaiting_approval (the
same bytes were delivered after it was approved: its witnesses decide again).
holding: arriving ─▶ received ─▶ opened ─▶ in_use ─▶ deleted | returned; arriving ─▶ refused ─▶
arriving. Values only: moving a row is `gateway.state.machine.compare_and_set`.
"""

from __future__ import annotations

from enum import StrEnum

from gateway.state.machine import Machine


class State(StrEnum):
    """The state of an outbound transfer."""

    DROPPED = "dropped"  # an intake intent: recorded, not yet moved into the spool
    QUARANTINED = "quarantined"  # in the spool, hashed, not yet checked
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    SEALED = "sealed"  # encrypted in the spool, password ready
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"  # kept in the spool with its reasons, never deleted silently
    FAILED = "failed"  # delivery failed after retries (an operator can retry), or a step met
    # repeated internal errors (rule internal.error)
    EXPIRED = "expired"  # not approved within its approval window; kept in the spool


TRANSFERS: Machine[State] = Machine(
    "transfer",
    {
        State.DROPPED: frozenset({State.QUARANTINED, State.REJECTED, State.FAILED}),
        State.QUARANTINED: frozenset({State.AWAITING_APPROVAL, State.REJECTED, State.FAILED}),
        State.AWAITING_APPROVAL: frozenset({State.APPROVED, State.REJECTED, State.EXPIRED}),
        # Back to the witnesses when the same bytes were delivered after they approved: the
        # statement changed (gateway.outbound.reapproval).
        State.APPROVED: frozenset({State.SEALED, State.REJECTED, State.FAILED,
                                   State.AWAITING_APPROVAL}),
        State.SEALED: frozenset({State.DELIVERED, State.FAILED, State.REJECTED}),
        State.FAILED: frozenset({State.SEALED, State.REJECTED}),
        State.DELIVERED: frozenset({State.ACKNOWLEDGED}),
        State.ACKNOWLEDGED: frozenset(),
        State.REJECTED: frozenset(),
        State.EXPIRED: frozenset(),
    },
    hint="see `tachiai transfers show ID` for its state and what it waits for",
)


class HoldingState(StrEnum):
    """The state of a holding (保有データ)."""

    ARRIVING = "arriving"  # an intake intent: files moving into our folder, not yet verified
    RECEIVED = "received"  # verified, encrypted at rest, nobody has opened it
    OPENED = "opened"  # released once to a designated handler's own folder
    IN_USE = "in_use"  # released again: being worked with
    DELETED = "deleted"  # certified deleted (消去) by a designated handler; our copies erased
    RETURNED = "returned"  # certified returned (返却); our copies erased
    REFUSED = "refused"  # did not verify; kept in quarantine with its reasons, never released


HOLDINGS: Machine[HoldingState] = Machine(
    "holding",
    {
        HoldingState.ARRIVING: frozenset({HoldingState.RECEIVED, HoldingState.REFUSED}),
        HoldingState.RECEIVED: frozenset(
            {HoldingState.OPENED, HoldingState.DELETED, HoldingState.RETURNED}
        ),
        HoldingState.OPENED: frozenset(
            {HoldingState.IN_USE, HoldingState.DELETED, HoldingState.RETURNED}
        ),
        HoldingState.IN_USE: frozenset({HoldingState.DELETED, HoldingState.RETURNED}),
        HoldingState.REFUSED: frozenset({HoldingState.ARRIVING}),
        HoldingState.DELETED: frozenset(),
        HoldingState.RETURNED: frozenset(),
    },
    hint="see `tachiai holdings show ID` for its state",
)
HELD = (HoldingState.RECEIVED, HoldingState.OPENED, HoldingState.IN_USE)
DISPOSED = (HoldingState.DELETED, HoldingState.RETURNED)
