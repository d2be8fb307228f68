"""The states of an outbound transfer and the only transitions allowed between them.

dropped ─▶ quarantined ─▶ awaiting_approval ─▶ approved ─▶ sealed ─▶ delivered ─▶ acknowledged
   └─────────┴──────────────────┴──────────────────┴──────────┴──▶ rejected    sealed ─▶ failed
The table lives with the schema in `gateway.state.lifecycles` (the store moves transfers by it,
compare-and-set, so two processes never both take the same step); this is the outbound view.
"""

from __future__ import annotations

from gateway.state.lifecycles import TRANSFERS, State

__all__ = ["ALLOWED", "TERMINAL", "State", "require_transition"]

ALLOWED = TRANSFERS.allowed
TERMINAL = TRANSFERS.terminal


def require_transition(current: State, target: State) -> None:
    """Raises: StateError when `target` cannot follow `current`."""
    TRANSFERS.require_transition(current, target)
