"""A transfer rejected, with its reasons: the one way every step of the outbound pipeline
ends a transfer it refuses (the reasons recorded on the row and in a `transfer.rejected`
event, the sender named when known).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime, event
from gateway.state.rows import Transfer
from policies.reasons import Reason

log = logging.getLogger(__name__)


def reject(rt: Runtime, t: Transfer, reasons: list[Reason], *,
            named: dict[str, str] | None = None, **changes: Any) -> Transfer:
    dicts = [r.as_dict() for r in reasons]
    log.info("transfer %s rejected: %s", t.id, ", ".join(r.rule for r in reasons))
    data: dict[str, Any] = {"reasons": dicts, "stage": t.state, **(named or {})}
    sender = changes.get("sender", t.sender)
    if sender is not None:
        data["sender"] = sender
    return rt.store.transition(t, State.REJECTED, [event("transfer.rejected", t, data,
                                                         actor=sender)],
                               reasons=json.dumps(dicts, ensure_ascii=False), **changes)
