"""Checking a refused delivery (受信拒否) again: refused → arriving, once the operator has fixed
the cause (a missing handler, an agreement not yet loaded).

It only puts the holding back in line, recorded with the operator's name; the daemon's next
inbound pass decides again. It never releases, re-verifies or deletes anything itself.
"""

from __future__ import annotations

from gateway.inbound import holdings
from gateway.inbound.holdings import Holding, HoldingState
from gateway.inbound.signers import refuse_state
from gateway.runtime import Runtime
from gateway.state import clock


def retry(rt: Runtime, holding_id: str, operator: str) -> Holding:
    """refused → arriving: the daemon checks the kept delivery again at its next pass.

    Raises:
        StateError: the holding was not refused.
    """
    h = holdings.get(rt, holding_id)
    if h.status is not HoldingState.REFUSED:
        refuse_state(rt, h, "retry", "retry.state", f"holding {h.id} is {h.state}, not refused",
                     hint="only a refused delivery is checked again")
    now = clock.now_ns()
    after = holdings.transition(
        rt,
        h,
        HoldingState.ARRIVING,
        [
            holdings.event(
                "holding.retried",
                h,
                {"operator": operator, "previous": h.reason_list()},
                key=f"{h.id}:holding.retried:{now}",
                time_ns=now,
            )
        ],
    )
    rt.flush()
    return after
