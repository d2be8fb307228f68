"""Certificates (証明) a designated receiving handler signs: deletion (消去), return (返却), or
a correction applied (訂正の反映), kept with the signature; a disposal then erases our copies.

It never accepts a certificate dated outside receipt..today, a disposal the agreement does not
allow, or a method that holds personal data; each refusal is recorded before it is raised.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from gateway.errors import UsageError
from gateway.i18n import N_
from gateway.inbound import holdings
from gateway.inbound.holdings import Holding, HoldingState
from gateway.inbound.signers import (
    agreement_of,
    holding_statement,
    one_line,
    record_refusal,
    refuse,
    refuse_state,
    signer,
)
from gateway.runtime import Runtime
from gateway.state import clock, holdings_store
from gateway.state.schema import Certificate
from policies.checkdigits import contains_my_number
from policies.reasons import Reason
from policies.retention import disposal_refusal

CERTIFICATE_NAMESPACE = "tachiai-certificate"
KINDS = {
    "deleted": "消去 (deleted)",
    "returned": "返却 (returned)",
    "applied": "訂正の反映 (correction applied)",
}
MAX_METHOD = 500


def certificate_statement(h: Holding, kind: str, method: str, signed_on: dt.date) -> bytes:
    """The certificate a handler signs: what, how and when (who is the signing key)."""
    return holding_statement(
        "tachiai certificate v1",
        h,
        [f"kind: {kind}", f"method: {one_line(method)}", f"date: {signed_on.isoformat()}"],
    )


def certify(
    rt: Runtime, holding_id: str, kind: str, method: str, signed_on: dt.date, signature: str
) -> Holding:
    """Check a handler's signed certificate, record it, and for a disposal erase our copies.

    Raises:
        UsageError: the method is empty, too long or holds what looks like a My Number.
        StateError: the holding cannot be certified so (already disposed, not a correction).
        SignatureError: the signature is malformed or over other bytes.
        CheckFailed: not a designated receiving handler, a date out of range, or a disposal
            the agreement does not allow (each refusal recorded).
    """
    method = one_line(method)
    h = holdings.get(rt, holding_id)
    if not method or len(method) > MAX_METHOD or contains_my_number(method):
        message = (f"--method must be one line of 1 to {MAX_METHOD} characters without "
                   "personal data")
        # Recorded without the method: it may hold the very personal data refused here.
        record_refusal(rt, h, "certify", Reason("certify.method", message), None, None)
        raise UsageError(
            message,
            hint=N_("e.g. --method \"shredded the DVD; deleted the files from the "
                    "processing server\""),
        )
    if kind == "applied":
        if h.corrects is None or h.status not in (*holdings.HELD, *holdings.DISPOSED):
            refuse_state(rt, h, "certify", "certify.state",
                         f"holding {h.id} is not a received correction (訂正); nothing to apply")
        if h.applied_ns is not None:
            refuse_state(rt, h, "certify", "certify.state",
                         f"the correction {h.id} was already certified applied")
    elif h.status not in holdings.HELD:
        refuse_state(rt, h, "certify", "certify.state",
                     f"holding {h.id} is {h.state}; only held data is deleted or returned")
    statement = certificate_statement(h, kind, method, signed_on)
    handler, signed = signer(rt, h, statement, signature, CERTIFICATE_NAMESPACE, "certify")
    agreement = agreement_of(rt, h)
    received = dt.date.fromisoformat(h.received_on or signed_on.isoformat())
    if not received <= signed_on <= clock.today():
        refuse(
            rt,
            h,
            "certify",
            Reason(
                "certificate.date",
                "the certificate's date must be between the day of receipt and today",
            ),
            signed,
            handler,
        )
    if kind != "applied":
        refusal = disposal_refusal(agreement, "delete" if kind == "deleted" else "return", True)
        if refusal is not None:
            refuse(rt, h, "certify", refusal, signed, handler)
    now = clock.now_ns()
    data = {
        "kind": kind,
        "method": method,
        "handler": handler.name,
        "certified_on": signed_on.isoformat(),
        "fingerprint": signed.fingerprint,
        "statement": statement.decode("utf-8"),
        "signature": signature,
        "namespace": CERTIFICATE_NAMESPACE,
    }
    with rt.store.transaction() as conn:
        holdings_store.add_certificate(
            conn,
            Certificate(
                holding=h.id,
                kind=kind,
                handler=handler.name,
                method=method,
                signed_on=signed_on.isoformat(),
                statement=statement.decode("utf-8"),
                signature=signature,
                fingerprint=signed.fingerprint,
                created_ns=now,
            ),
        )
        events = [
            holdings.event(
                "holding.certified",
                h,
                data,
                actor=handler.name,
                key=f"{h.id}:holding.certified:{kind}",
                time_ns=now,
            )
        ]
        if kind == "applied":
            h = holdings.update(rt, h, events, conn, applied_ns=now)
        else:
            h = holdings.transition(rt, h, HoldingState(kind), events, conn)
    rt.flush()
    if kind != "applied":
        h = holdings.erase(rt, h)
    return h


def certificates_of(rt: Runtime, holding_id: str) -> list[dict[str, Any]]:
    """A holding's certificates, oldest first: kind, handler, method, date, key, recorded.

    Raises:
        StorageError: the state database cannot be read.
    """
    return [
        {
            "kind": c.kind,
            "handler": c.handler,
            "method": c.method,
            "signed_on": c.signed_on,
            "fingerprint": c.fingerprint,
            "recorded": clock.iso(c.created_ns),
        }
        for c in holdings_store.certificates(rt.store, holding_id)
    ]
