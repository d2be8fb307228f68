"""The manifest (送付票) of a sealed outbound transfer, built from the database alone.

A retry writes the same bytes, so a recipient that took the first copy sees the same document.
Only approvals whose signature verifies over the statement are listed. The format and its check
on the receiving side are in `gateway.exchange.manifest`; this module never sends anything.
"""

from __future__ import annotations

from gateway.errors import SignatureError
from gateway.exchange.manifest import APPROVAL_NAMESPACE, Manifest, SignedApproval
from gateway.identity import sshsig
from gateway.outbound import approvals, replies
from gateway.runtime import Runtime
from gateway.state.store import Transfer


def build(rt: Runtime, t: Transfer, delivered_name: str, *,
          link: replies.Link = replies.UNREAD) -> Manifest:
    """The manifest of a sealed transfer, from the database alone (so a retry writes the same
    bytes): only approvals whose signature verifies over the statement are listed.

    `link`: the transfer's reply link as the delivery step read it (for its check, this
    manifest and its event: one read); read here when not given.

    Raises:
        ConfigError: the transfer's agreement or flow is no longer loaded.
    """
    agreement, flow = rt.agreement_flow(t.agreement, t.flow)
    flow = agreement.flow_for(flow, t.provider, t.recipient)
    if link is replies.UNREAD:
        link = replies.link_of(rt, t.id)
    message = approvals.statement(rt, t, link=link)
    signed: list[SignedApproval] = []
    for a in rt.store.approvals(t.id):
        try:
            sshsig.verify(message, a.signature, APPROVAL_NAMESPACE)
        except SignatureError:
            continue  # made over other bytes: it approves nothing that is sent
        signed.append(SignedApproval(a.witness, a.fingerprint, a.signature))
    return Manifest(
        transfer=t.id,
        agreement=t.agreement,
        flow=t.flow,
        provider=flow.provider,
        recipient=flow.recipient,
        file_name=t.file_name,
        delivered_name=delivered_name,
        size=t.size or 0,
        sha256=t.sha256 or "",
        sealed_size=t.sealed_size or 0,
        sealed_sha256=t.sealed_sha256 or "",
        profile=flow.encryption,
        sender=t.sender,
        statement=message.decode("utf-8"),
        approvals=tuple(signed),
        replies_to=link.remote if link is not None and link.relation == "replies_to" else None,
        corrects=link.remote if link is not None and link.relation == "corrects" else None,
    )
