"""Witnessed send (複数人が立ち合いのもと送信): who may approve and when enough have.

The gateway verifies the SSH signature and tells us whose key made it; here we decide whether
that person may count as a witness. Fail closed: no approvals approve nothing, and a flow always
needs at least one witness besides the sender.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from policies.agreement import Agreement, Flow
from policies.handlers import Handler
from policies.reasons import Reason


def witness_refusal(
    agreement: Agreement,
    flow: Flow,
    witness: Handler | None,
    sender: str | None,
    already: Collection[str],
    on: dt.date,
) -> Reason | None:
    """Why this signer cannot count as a witness of this transfer, or None when they can."""
    term = f"{agreement.id}/flows.{flow.id}.witnesses"
    if witness is None:
        return Reason("approval.unknown-key", "the signing key belongs to no designated handler; "
                      "sign with your own registered key", term)
    if witness.name == sender:
        return Reason("approval.self", "the sender cannot witness their own transfer; "
                      "another designated witness must approve it", term)
    if witness.party != flow.provider:
        return Reason("approval.wrong-party", f"witnesses must belong to the providing party "
                      f"{flow.provider}", term)
    if not witness.designated(agreement.id, "witness", on):
        return Reason("approval.not-designated", "the signer is not a designated witness for "
                      "this agreement on this date; ask the administrator to designate them", term)
    if witness.name in already:
        return Reason("approval.duplicate", "this witness has already approved this transfer; "
                      "another witness is needed", term)
    return None


def quorum_reached(flow: Flow, witnesses: Collection[str], sender: str | None) -> bool:
    """Enough distinct witnesses, none of them the sender."""
    counted = {w for w in witnesses if w != sender}
    return flow.witnesses >= 1 and len(counted) >= flow.witnesses
