"""The one state-machine helper, as transfers and holdings use it: only listed transitions,
and a compare-and-set that never moves a row another process moved first."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from gateway.errors import StateError
from gateway.state import holdings_store, schema
from gateway.state.lifecycles import HOLDINGS, TRANSFERS, HoldingState, State
from gateway.state.machine import compare_and_set
from gateway.state.store import Store


@pytest.mark.parametrize(
    ("current", "target"), list(itertools.product(HoldingState, HoldingState))
)
def test_only_listed_holding_transitions_are_allowed(
    current: HoldingState, target: HoldingState
) -> None:
    if target in HOLDINGS.allowed[current]:
        HOLDINGS.require_transition(current, target)
    else:
        with pytest.raises(StateError, match="a holding in state"):
            HOLDINGS.require_transition(current, target)


def test_each_lifecycle_names_its_own_terminal_states() -> None:
    assert {State.ACKNOWLEDGED, State.REJECTED, State.EXPIRED} == TRANSFERS.terminal
    assert {HoldingState.DELETED, HoldingState.RETURNED} == HOLDINGS.terminal
    assert State.ACKNOWLEDGED in TRANSFERS.allowed[State.DELIVERED]


def test_compare_and_set_refuses_a_row_moved_since_it_was_read(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    h = schema.Holding(id="h-1", state="arriving", delivered_name="x", created_ns=1,
                       updated_ns=1)
    holdings_store.create(store, h)
    moved = holdings_store.update(store, h, {"state": "received"}, [])
    assert holdings_store.get(store, "h-1").state == "received" == moved.state
    conflict = StateError("moved")
    with pytest.raises(StateError, match="moved"), store.transaction() as conn:
        compare_and_set(conn, schema.HOLDINGS, "h-1", "arriving", {"state": "refused"}, conflict)
    with pytest.raises(StateError, match="cannot become"):
        holdings_store.update(store, moved, {"state": "arriving"}, [])
    assert holdings_store.get(store, "h-1").state == "received"
