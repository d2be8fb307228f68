"""Putting a failed transfer back in line: failed → sealed, attempts reset.

It only changes the state, recorded with the operator's name; the daemon's next pass delivers.
It never delivers, re-seals or touches the spool itself.
"""

from __future__ import annotations

from gateway.errors import StateError
from gateway.i18n import N_
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime, event
from gateway.state import clock
from gateway.state.rows import Transfer


def retry(rt: Runtime, transfer_id: str, operator: str) -> Transfer:
    """failed → sealed, attempts reset, recorded with the operator's name.

    Raises:
        StateError: the transfer is not failed, or failed before it was sealed.
    """
    t = rt.store.get(transfer_id)
    if t.status is not State.FAILED:
        raise StateError(
            N_("transfer {id} is {state}, not failed").format(
                id=t.id, state=t.state), hint=N_("only failed transfers can be retried")
        )
    if t.sealed_sha256 is None:
        # Failed before it was sealed (rule internal.error): there is nothing to deliver.
        raise StateError(
            N_("transfer {id} failed before it was sealed, so it cannot be "
               "delivered").format(id=t.id),
            hint=N_("report the error with the daemon's log, then drop the file "
                    "again"),
        )
    now = clock.now_ns()
    after = rt.store.transition(
        t,
        State.SEALED,
        [
            event(
                "transfer.retried",
                t,
                {"previous_attempts": t.attempts, "operator": operator},
                key=f"{t.id}:transfer.retried:{now}",
                time_ns=now,
            )
        ],
        attempts=0,
    )
    rt.flush()
    return after
