"""The delivery step of the outbound pipeline: sealed → delivered, or a failed attempt counted
(retried, then failed), and the spool's password erased after it.

What goes out is checked once more before it leaves (the flow's recipient, a reply's link, the
sealed bytes against those recorded); the intent is recorded before the file becomes visible at
the partner, so a retry after a crash never sends it twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence

from audit.events import Draft
from gateway import faults
from gateway.config.settings import Recipient
from gateway.errors import PartnerRefused, PartnerUnavailable, StorageError
from gateway.i18n import N_
from gateway.outbound import failures, manifests, replies
from gateway.outbound.delivery import delivered_name, password_channel_for, transport_for
from gateway.outbound.lifecycle import State
from gateway.outbound.rejection import reject
from gateway.outbound.sealing import PASSWORD_PROFILES, sealed_intact, sealed_path, suffix
from gateway.runtime import Runtime, event
from gateway.state import clock
from gateway.state.rows import Transfer, TransferLink
from gateway.transports import HostKeyRefused, Parcel
from gateway.transports.password_channels import RETRIEVAL_MARK
from policies.agreement import Flow
from policies.reasons import Reason

log = logging.getLogger(__name__)

#: What a worker claims (gateway.state.claims); the same as `pipeline.KIND`.
KIND = "transfer"


def deliver(rt: Runtime, t: Transfer) -> Transfer:
    agreement, flow = rt.agreement_flow(t.agreement, t.flow)
    # A fan-out's child goes to its member of the group, as its statement names it.
    flow = agreement.flow_for(flow, t.provider, t.recipient)
    # The party the witnesses' statement named is the flow's; a stored column that says
    # otherwise was changed behind our back and is never followed.
    if t.recipient != flow.recipient:
        return reject(rt, t, [Reason(
            "delivery.recipient-changed", f"the transfer names recipient {t.recipient}, but "
            f"the flow (and the approved statement) names {flow.recipient}; nothing was sent",
            f"{t.agreement}/flows.{t.flow}.to")])
    # What this step reads (the link, and for the manifest the statement's duplicates and the
    # approvals) is read in one read transaction, before anything is written or sent.
    with rt.store.snapshot("read what is delivered"):
        # 疑義照会・回答: a reply leaves only linked to what it answers; the link is in the
        # statement the witnesses signed (`tachiai transfers link` before approval, where
        # `approvals.approve` refuses an unlinked reply). Checked again here, the last line of
        # defence. The link is read once in this step, now: what is checked is what the
        # manifest states and the delivered event records.
        link = replies.link_of(rt, t.id)
        unlinked = replies.unlinked_reply(rt, t, link=link)
        document_of_manifest = _manifest(rt, t, flow, link) if unlinked is None else None
    if unlinked is not None:
        return reject(rt, t, [unlinked])
    recipient = rt.settings.recipient(flow.recipient)
    folder = rt.spool.folder(t.id)
    profile = flow.encryption
    name = delivered_name(t.id, t.file_name, suffix(profile))
    parcel = Parcel(transfer_id=t.id, path=sealed_path(folder, profile), name=name,
                    size=t.sealed_size or 0, sha256=t.sealed_sha256 or "", file_name=t.file_name,
                    manifest=document_of_manifest)
    if not sealed_intact(parcel.path, parcel.size, parcel.sha256):
        # What goes out must be what was sealed (and recorded): a changed file never leaves.
        return reject(rt, t, [Reason(
            "delivery.seal-changed", "the sealed file in the spool is not the one recorded when "
            "it was sealed; nothing was sent. Drop the file again and have it approved anew",
            f"{t.agreement}/flows.{t.flow}.encryption")])
    transport = transport_for(recipient)
    current = t

    def committing(location: str) -> None:
        # The intent, recorded before the file becomes visible: if we crash after the rename
        # and the partner takes the file meanwhile, the retry knows not to send it again.
        nonlocal current
        current = rt.store.update(current, [], delivered_path=location)

    document = None
    if profile in PASSWORD_PROFILES:
        try:
            document = (folder / "password").read_bytes()
        except OSError as exc:
            raise StorageError(N_("cannot read the password in the spool: {strerror}").format(
                                   strerror=exc.strerror)) from exc
    issued = None
    try:
        if document is not None:
            # The password goes first, by its own route, so nobody holds a file nobody can open.
            issued = password_channel_for(recipient, folder).issue(parcel, document)
        done = transport.send(parcel, renamed_before=t.delivered_path is not None,
                              committing=committing)
    except HostKeyRefused as exc:
        # A changed host key is permanent until an operator acts: recorded, then failed at once.
        now = clock.now_ns()
        noted = event("transport.host_key_refused", current, {
            "host": exc.host, "port": exc.port, "expected": list(exc.expected),
            "offered": exc.offered}, key=f"{current.id}:host-key-refused:{now}", time_ns=now)
        return _delivery_failed(rt, current, recipient, exc, refused=True, noted=[noted])
    except PartnerRefused as exc:
        return _delivery_failed(rt, current, recipient, exc, refused=True)
    except PartnerUnavailable as exc:
        return _delivery_failed(rt, current, recipient, exc, refused=False)
    t = current
    faults.crash_point("after-deliver")
    events = []
    password_path = None
    if issued is not None:
        password_path = issued.location if issued.kind != "retrieval" else RETRIEVAL_MARK
        events.append(event("password.issued", t, {
            "channel": issued.kind, "path": password_path, **issued.details}))
    events.append(event("transfer.delivered", t, {
        "path": done.location, "transport": done.kind, "sealed_sha256": t.sealed_sha256,
        **({"manifest": parcel.manifest_name,
            "manifest_sha256": hashlib.sha256(parcel.manifest).hexdigest()}
           if parcel.manifest is not None else {}),
        **({"link": {"relation": link.relation, "transfer": link.remote}} if link else {}),
        **done.details}))
    # The move ends the claim in its own commit: the spool's copy of a password is erased
    # next (erase_password) without one, so no commit of its own releases it.
    delivered = rt.store.transition(t, State.DELIVERED, events, delivered_path=done.location,
                                    password_path=password_path)
    faults.crash_point("after-delivered")
    return delivered



def _manifest(rt: Runtime, t: Transfer, flow: Flow, link: TransferLink | None) -> bytes | None:
    """The manifest (送付票) sent beside the file, when the recipient takes one (else nothing
    is read for it). Made from the database alone, so a retry sends the same bytes.

    Raises:
        ConfigError: no delivery is configured for the recipient.
    """
    if not rt.settings.recipient(flow.recipient).manifest:
        return None
    name = delivered_name(t.id, t.file_name, suffix(flow.encryption))
    return manifests.build(rt, t, name, link=link).to_bytes()


def _delivery_failed(
    rt: Runtime,
    t: Transfer,
    recipient: Recipient,
    exc: PartnerRefused | PartnerUnavailable,
    *,
    refused: bool,
    noted: Sequence[Draft] = (),
) -> Transfer:
    """Count a failed attempt: failed at once when refused, else retried until the limit."""
    attempts = t.attempts + 1
    now = clock.now_ns()
    log.warning("delivery of %s failed (attempt %d): %s", t.id, attempts, exc)
    events = list(noted)
    final = refused or attempts >= recipient.attempts
    error = failures.describe(t, exc, attempts=attempts, limit=recipient.attempts, final=final,
                              at=clock.iso(now))
    info = {"attempts": attempts, "error": str(exc), "hint": error["hint"], "rule": error["rule"],
            "transport": recipient.transport, "route": recipient.route()}
    last_error = json.dumps(error, ensure_ascii=False)
    if final:
        events.append(event("transfer.failed", t, {**info, "refused": refused},
                            key=f"{t.id}:transfer.failed:{now}", time_ns=now))
        return rt.store.transition(t, State.FAILED, events, attempts=attempts,
                                   last_error=last_error)
    events.append(event("delivery.retry", t, {**info, "attempt": attempts},
                        key=f"{t.id}:delivery.retry:{now}", time_ns=now))
    return rt.store.update(t, events, attempts=attempts, last_error=last_error)


def erase_password(rt: Runtime, t: Transfer, *, owner: str | None = None) -> None:
    """Remove a delivered transfer's password from the spool: by the worker that delivered it,
    right after the delivered move, and at start (`pipeline.recover`) for a worker killed
    between the two.

    No claim is taken, so erasing costs no commit: a delivered transfer never goes back to a
    state whose step reads or writes the spool's password (delivered → acknowledged only), so
    the one thing done here is an unlink that is the same whoever does it, once or twice. A
    claim `owner` still holds on it is given back (a delivered move of an earlier release kept
    the claim for the erasure).

    Raises:
        StorageError: the database cannot be written (a claim given back).
    """
    if t.status not in (State.DELIVERED, State.ACKNOWLEDGED):
        return  # only after the delivered move: a retry of the delivery reads it
    password = rt.spool.folder(t.id) / "password"
    try:
        password.unlink(missing_ok=True)
    finally:
        if owner is not None and t.claimed_by == owner:
            rt.store.release(KIND, t.id, owner)
