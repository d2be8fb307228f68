"""The transfer state machine: every transition not in the table is refused."""

from __future__ import annotations

import itertools

import pytest

from gateway.errors import StateError
from gateway.outbound.lifecycle import ALLOWED, TERMINAL, State, require_transition


@pytest.mark.parametrize(("current", "target"), list(itertools.product(State, State)))
def test_only_listed_transitions_are_allowed(current: State, target: State) -> None:
    if target in ALLOWED[current]:
        require_transition(current, target)
    else:
        with pytest.raises(StateError):
            require_transition(current, target)


def test_delivery_needs_approval_first() -> None:
    # No path from awaiting_approval to sealed or delivered skips `approved`.
    assert State.SEALED not in ALLOWED[State.AWAITING_APPROVAL]
    assert State.DELIVERED not in ALLOWED[State.AWAITING_APPROVAL]
    assert State.DELIVERED not in ALLOWED[State.APPROVED]


def test_terminal_states() -> None:
    # `expired`: not approved within the approval window ([notify] approval_window_hours).
    assert {State.ACKNOWLEDGED, State.REJECTED, State.EXPIRED} == TERMINAL


def test_only_a_waiting_transfer_expires() -> None:
    assert [s for s in State if State.EXPIRED in ALLOWED[s]] == [State.AWAITING_APPROVAL]
