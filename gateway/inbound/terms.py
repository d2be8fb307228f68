"""Terms before data: the recipient's obligations (提供先の義務) as the exact bytes a designated
receiving handler (受信担当) signs, kept with the signature, and checked again before opening.

It never releases data and never trusts a kept signature without verifying it anew: whoever can
write the state database cannot sign.
"""

from __future__ import annotations

import hashlib

from gateway.errors import CheckFailed
from gateway.identity import sshsig
from gateway.inbound import holdings
from gateway.inbound.signers import agreement_of, one_line, signer
from gateway.runtime import Runtime
from gateway.state import clock, holdings_store
from policies.agreement import Agreement
from policies.handlers import Handler
from policies.terms import OBLIGATIONS, RETENTION_AFTER, RETENTION_THEN

TERMS_NAMESPACE = "tachiai-terms"


def terms_statement(agreement: Agreement, party: str) -> bytes:
    """The recipient's obligations under `agreement`, the exact bytes a handler signs."""
    chain = agreement.onward_chain.get(party, ())
    retention = agreement.retention
    lines = [
        "tachiai recipient terms v1",
        f"agreement: {agreement.id}",
        f"title: {one_line(agreement.title)}",
        f"party: {party}",
        f"purpose: {one_line(agreement.purpose)}",
        f"legal-basis: {one_line(agreement.legal_basis_text or agreement.legal_basis)}",
        "onward: "
        + (f"only to {', '.join(chain)}" if chain else "to nobody (第三者への再提供の禁止)")
        + ("; contractors (委託事業者) allowed" if party in agreement.contractors else ""),
        "retention: "
        + (
            "no term"
            if retention is None
            else f"{retention.then} ({RETENTION_THEN[retention.then]}) "
            f"{RETENTION_AFTER[retention.after]}"
            + (f", within {retention.max_days} days" if retention.max_days else "")
            + (", certified by signature" if retention.certificate else "")
        ),
        "report: "
        + (f"{agreement.report.every} to {agreement.report.to}" if agreement.report else "none"),
        "corrections: "
        + ("accepted and applied (訂正に応じる)" if agreement.corrections else "none agreed"),
    ]
    for ob in agreement.obligations:
        # A member of a party group (国保連合会 of one prefecture, one 市町村) owes its group's.
        if agreement.acts_as(party, ob.party):
            lines.append(f"obligation: {ob.id} {OBLIGATIONS[ob.id]}: {one_line(ob.text)}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def holder(rt: Runtime, h: holdings.Holding) -> str:
    """The party a holding is held for: its member on a gateway of partitions, else ours."""
    return h.recipient or rt.settings.party


def sign_terms(rt: Runtime, holding_id: str, signature: str) -> str:
    """Check and keep a handler's signature over the recipient's obligations; return who.

    Raises:
        SignatureError: the signature is malformed or over other bytes.
        CheckFailed: the signer is not a designated receiving handler (recorded).
    """
    h = holdings.get(rt, holding_id)
    agreement = agreement_of(rt, h)
    statement = terms_statement(agreement, holder(rt, h))
    handler, signed = signer(rt, h, statement, signature, TERMS_NAMESPACE, "terms")
    digest = hashlib.sha256(statement).hexdigest()
    now = clock.now_ns()
    with rt.store.transaction() as conn:
        added = holdings_store.add_terms(
            conn,
            agreement=agreement.id,
            handler=handler.name,
            terms_sha256=digest,
            statement=statement.decode("utf-8"),
            signature=signature,
            fingerprint=signed.fingerprint,
            now_ns=now,
        )
        if added:
            rt.store.record(
                [
                    holdings.event(
                        "holding.terms_signed",
                        h,
                        {
                            "handler": handler.name,
                            "fingerprint": signed.fingerprint,
                            "terms_sha256": digest,
                            "statement": statement.decode("utf-8"),
                            "signature": signature,
                            "namespace": TERMS_NAMESPACE,
                        },
                        actor=handler.name,
                        key=f"terms:{agreement.id}:{handler.name}:{digest}",
                        time_ns=now,
                    )
                ],
                conn,
            )
    rt.flush()
    return handler.name


def terms_signed(rt: Runtime, agreement: Agreement, handler: Handler) -> bool:
    """Whether the handler's kept signature verifies over the terms as they are now.

    Raises:
        StorageError: the state database cannot be read.
    """
    # The signer was checked to be a handler of the holding's party (its partition, 区画).
    statement = terms_statement(agreement, handler.party)
    digest = hashlib.sha256(statement).hexdigest()
    for signature in holdings_store.terms_signatures(
        rt.store, agreement.id, handler.name, digest
    ):
        # Re-checked, never trusted from the row: whoever can write the database cannot sign.
        try:
            signed = sshsig.verify(statement, signature, TERMS_NAMESPACE)
        except CheckFailed:
            continue
        if rt.registry.by_key(signed.public_key) == handler:
            return True
    return False
