"""Witnessed send (複数人が立ち合いのもと送信): who may approve and when enough have.

The gateway verifies the SSH signature and tells us whose key made it; here we decide whether
that person may count as a witness, and whether the signature proves enough of them (a security
key's touch and PIN flags, per the agreement). Fail closed: no approvals approve nothing, and a
flow always needs at least one witness besides the sender.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from policies.agreement import Agreement, Flow
from policies.handlers import Handler
from policies.reasons import Reason
from policies.wording import R_

# Authenticator flags in a security key's signature (PROTOCOL.u2f; WebAuthn §6.1 "flags").
USER_PRESENCE = 0x01
USER_VERIFICATION = 0x04


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
        return Reason("approval.unknown-key", R_("the signing key belongs to no designated "
                      "handler; sign with your own registered key"), term)
    if witness.name == sender:
        return Reason("approval.self", R_("the sender cannot witness their own transfer; "
                      "another designated witness must approve it"), term)
    if witness.party != flow.provider:
        return Reason("approval.wrong-party", R_("witnesses must belong to the providing party "
                      "{party}", party=flow.provider), term)
    if not witness.designated(agreement.id, "witness", on):
        return Reason("approval.not-designated", R_("the signer is not a designated witness for "
                      "this agreement on this date; ask the administrator to designate them"),
                      term)
    if witness.name in already:
        return Reason("approval.duplicate", R_("this witness has already approved this transfer; "
                      "another witness is needed"), term)
    return None


def quorum_reached(flow: Flow, witnesses: Collection[str], sender: str | None) -> bool:
    """Enough distinct witnesses, none of them the sender."""
    counted = {w for w in witnesses if w != sender}
    return flow.witnesses >= 1 and len(counted) >= flow.witnesses


def key_proof_refusal(agreement: Agreement, sk_flags: int | None) -> Reason | None:
    """Why an approval signature proves too little of its signer under the agreement's
    `[witness_keys]` term (立会者の鍵), or None when it proves enough.

    `sk_flags` are the authenticator flags a security key signature carries (PROTOCOL.u2f), or
    None for a key kept in a file. A touch (user presence) is always required of a security
    key; user verification (PIN or biometric) only when the agreement asks for it, and then a
    key file, which cannot show it, does not count.
    """
    term = f"{agreement.id}/witness_keys"
    if sk_flags is not None and not sk_flags & USER_PRESENCE:
        return Reason("approval.user-presence", R_("the security key was not touched when it "
                      "signed (user presence flag clear); sign again and touch the key"), term)
    if not agreement.witness_keys.require_user_verification:
        return None
    if sk_flags is None:
        return Reason("approval.user-verification", R_("this agreement requires user "
                      "verification (PIN or biometric) on a security key, and a key file "
                      "cannot show it; sign with your registered security key"), term)
    if not sk_flags & USER_VERIFICATION:
        return Reason("approval.user-verification", R_("the security key signed without user "
                      "verification (PIN or biometric), which this agreement requires; make "
                      "the key with `ssh-keygen -t ed25519-sk -O verify-required` and sign "
                      "again, entering the PIN"), term)
    return None
