"""Giving up on one transfer after repeated internal errors: `failed`, rule `internal.error`.

The daemon's workers call `give_up` when a step kept raising an error nobody foresaw (a bug),
so one file can never hold the others back. It records only the step, the count and the
error's class, never the file's content or the error's text (which may quote it).
"""

from __future__ import annotations

import json
import logging

from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime, event
from gateway.state import clock
from gateway.state.store import Transfer
from policies.reasons import Reason

log = logging.getLogger(__name__)

RULE = "internal.error"
HINT = ("report it to the maintainers with the daemon's log around this transfer id; after a "
        "fix, drop the file again")
#: The states a worker acts in, which a transfer may leave for `failed` (gateway.state.lifecycles).
STAGES = (State.DROPPED, State.QUARANTINED, State.APPROVED, State.SEALED)


def give_up(rt: Runtime, t: Transfer, owner: str, lease_seconds: float, tries: int,
            error: BaseException) -> Transfer | None:
    """Move `t` to failed with rule internal.error, claimed first; None when another worker or
    process moved it meanwhile (then nothing is recorded).

    Raises:
        StorageError: the state database cannot be written.
    """
    if t.status not in STAGES or not rt.store.claim("transfer", t.id, t.state, owner,
                                                    lease_seconds):
        return None
    t = t.model_copy(update={"claimed_by": owner})
    now = clock.now_ns()
    reason = Reason(RULE, f"an internal error ({type(error).__name__}) stopped step "
                          f"{t.state} of this transfer {tries} times; nothing more is done with "
                          f"it: {HINT}")
    dicts = [reason.as_dict()]
    log.error("transfer %s failed after %d internal errors in step %s", t.id, tries, t.state)
    return rt.store.transition(t, State.FAILED, [event("transfer.failed", t, {
        "attempts": tries, "error": type(error).__name__, "hint": HINT, "refused": False,
        "stage": t.state, "reasons": dicts,
    }, key=f"{t.id}:transfer.failed:{now}", time_ns=now)],
        reasons=json.dumps(dicts, ensure_ascii=False))
