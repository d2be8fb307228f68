"""Receiving verdicts: who the designated receiving handlers (受信担当) of a party are on a day,
and why one signer is not one of them.

Pure, like `policies.approvals`: it takes the registry, a party, an agreement id and a date, and
returns handlers or a reason. It never verifies a signature, reads a file or records anything;
the gateway does that and then asks here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from policies.handlers import Handler, Registry
from policies.reasons import Reason
from policies.wording import R_

RECEIVE = "receive"  # the role a receiving handler holds in the registry


def designated_receivers(
    registry: Registry, agreement_id: str, party: str, on: dt.date
) -> tuple[Handler, ...]:
    """Every handler of `party` designated to receive under the agreement on that day.

    In registry order. Empty means nobody may receive: callers fail closed on it.
    """
    return tuple(
        h for h in registry.handlers if h.party == party and h.designated(agreement_id, RECEIVE, on)
    )


def receiver_refusal(
    receiver: Handler | None,
    party: str,
    agreement_id: str | None,
    on: dt.date,
    *,
    action: str = RECEIVE,
    key: str | None = None,
    partitions: Collection[str] = (),
) -> Reason | None:
    """Why this signer is not a designated receiving handler of `party` on that day, or None.

    `receiver` is the handler the verified signing key belongs to (None: nobody's); `action`
    prefixes the rule (`open.not-designated`), so a refusal names what was asked; `key` (a
    fingerprint) names the signer in the message when given. No agreement means nobody is
    designated (fail closed). `partitions` are the parties whose data this gateway holds side by
    side (区画, seed 004): a handler of one of them asking about another's data is refused with
    the rule `ACTION.partition`, so the attempt reads as what it is.
    """
    rule = f"{action}.not-designated"
    term = f"{agreement_id}/parties" if agreement_id is not None else None
    signer = R_("the key {key}", key=key) if key else R_("the signer")
    if receiver is None:
        return Reason(rule, R_("{signer} belongs to no registered handler, so it is not a "
                               "designated receiving handler (受信担当) of {party}; sign with your "
                               "own registered key", signer=signer, party=party), term)
    if receiver.party != party and receiver.party in partitions:
        return Reason(f"{action}.partition", R_(
            "the data belongs to the partition (区画) of {party}; {signer} belongs to {other}, "
            "and no member sees another's data here (区画ごとのアクセス制御); only a designated "
            "receiving handler of {party} may sign this", signer=signer, other=receiver.party,
            party=party), term)
    if receiver.party != party:
        return Reason(rule, R_("{signer} belongs to party {other}, so it is not a designated "
                               "receiving handler (受信担当) of {party}; only a receiving handler "
                               "of {party} may sign this", signer=signer, other=receiver.party,
                               party=party), term)
    if agreement_id is None or not receiver.designated(agreement_id, RECEIVE, on):
        return Reason(rule, R_("{signer} is not a designated receiving handler (受信担当) of "
                               "{party} for {agreement} on {day}; ask the administrator to "
                               "designate them with the receive role", signer=signer, party=party,
                               agreement=agreement_id or R_("this agreement"),
                               day=on.isoformat()), term)
    return None
