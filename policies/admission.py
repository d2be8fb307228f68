"""Who may send on a flow, and when: the sender and period terms of an agreement.

Pure decisions: the gateway passes the file owner's OS user name and the date; the answer is the
designated sender (送信担当) or the reasons there is none.
"""

from __future__ import annotations

import datetime as dt

from policies.agreement import Agreement, Flow
from policies.handlers import Handler, Registry
from policies.reasons import Reason


def find_sender(
    registry: Registry, agreement: Agreement, flow: Flow, os_user: str | None, on: dt.date
) -> Handler | Reason:
    """The designated sender who dropped the file, or why nobody qualifies."""
    term = f"{agreement.id}/flows.{flow.id}.from"
    if os_user is None:
        return Reason("sender.unknown", "the file's owner has no user name on this system; "
                      "drop files as your own designated user", term)
    for handler in registry.by_os_user(os_user):
        if handler.party == flow.provider and handler.designated(agreement.id, "send", on):
            return handler
    return Reason(
        "sender.not-designated",
        f"the file's owner is not a designated sender (取扱者) of party {flow.provider} for this "
        "agreement on this date; ask the administrator to designate them in the handler registry, "
        "or have a designated sender drop the file",
        term,
    )


def check_period(agreement: Agreement, on: dt.date) -> Reason | None:
    """Refuse provision outside the agreement's period of validity."""
    if agreement.in_force(on):
        return None
    until = agreement.valid_until.isoformat() if agreement.valid_until else "open"
    return Reason(
        "agreement.out-of-term",
        f"the agreement is in force from {agreement.valid_from.isoformat()} to {until}; "
        "provide within that period or have the agreement renewed",
        f"{agreement.id}/valid_from..valid_until",
    )
