"""The states of an outbound transfer and the only transitions allowed between them.

dropped ─▶ quarantined ─▶ awaiting_approval ─▶ approved ─▶ sealed ─▶ delivered ─▶ acknowledged
   └─────────┴──────────────────┴──────────────────┴──────────┴──▶ rejected    sealed ─▶ failed
A call out of order raises StateError; the store only moves a transfer from the state it was
read in (compare-and-set), so two processes can never both take the same step.
"""

from __future__ import annotations

from enum import StrEnum

from gateway.errors import StateError


class State(StrEnum):
    DROPPED = "dropped"  # an intake intent: recorded, not yet moved into the spool
    QUARANTINED = "quarantined"  # in the spool, hashed, not yet checked
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    SEALED = "sealed"  # encrypted in the spool, password ready
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"  # kept in the spool with its reasons, never deleted silently
    FAILED = "failed"  # delivery failed after retries; an operator can retry


ALLOWED: dict[State, frozenset[State]] = {
    State.DROPPED: frozenset({State.QUARANTINED, State.REJECTED}),
    State.QUARANTINED: frozenset({State.AWAITING_APPROVAL, State.REJECTED}),
    State.AWAITING_APPROVAL: frozenset({State.APPROVED, State.REJECTED}),
    State.APPROVED: frozenset({State.SEALED, State.REJECTED}),
    State.SEALED: frozenset({State.DELIVERED, State.FAILED, State.REJECTED}),
    State.FAILED: frozenset({State.SEALED, State.REJECTED}),
    State.DELIVERED: frozenset({State.ACKNOWLEDGED}),
    State.ACKNOWLEDGED: frozenset(),
    State.REJECTED: frozenset(),
}

TERMINAL = frozenset(s for s, nxt in ALLOWED.items() if not nxt)


def require_transition(current: State, target: State) -> None:
    """Raises: StateError when `target` cannot follow `current`."""
    if target not in ALLOWED[current]:
        raise StateError(
            f"a transfer in state {current.value} cannot become {target.value}",
            hint="see `tachiai transfers show ID` for its state and what it waits for",
        )
