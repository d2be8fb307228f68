"""Witness approvals and rejections (立会者の承認) as SSH signatures over a statement.

The statement names the transfer, agreement, flow, parties, sender, file name, size and SHA-256,
so a signature approves exactly those bytes and nothing else; a changed byte voids it. Every
attempt, accepted or refused, is a ledger event an auditor can re-check with `ssh-keygen -Y`.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from gateway.errors import (
    RAISED_TOO,
    CheckFailed,
    InputError,
    SignatureError,
    StateError,
    TachiaiError,
    UsageError,
)

# The namespace is the exchange's (a receiving gateway checks it too); commands read it here.
from gateway.exchange.words import APPROVAL_NAMESPACE as APPROVAL_NAMESPACE
from gateway.exchange.words import DUPLICATE_KEY
from gateway.exchange.words import REJECTION_NAMESPACE as REJECTION_NAMESPACE
from gateway.i18n import N_
from gateway.identity import sshsig
from gateway.identity.sshkeys import PrivateKey
from gateway.outbound import duplicates, replies
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime, event
from gateway.state import clock, fanouts
from gateway.state.rows import Approval, Transfer
from policies.approvals import key_proof_refusal, quorum_reached, witness_refusal
from policies.checkdigits import contains_my_number
from policies.reasons import Reason

if TYPE_CHECKING:
    from policies.agreement import Agreement, Flow

log = logging.getLogger(__name__)

# Not from `sealed`: the daemon may be delivering it at this moment, and a rejection racing
# a delivery could leave the partner holding data the ledger calls rejected.
_REJECTABLE = (State.QUARANTINED, State.AWAITING_APPROVAL, State.APPROVED, State.FAILED)


@dataclass(frozen=True)
class ApprovalOutcome:
    transfer: Transfer
    witness: str
    approvals: tuple[str, ...]
    needed: int

    @property
    def approved(self) -> bool:
        return self.transfer.status is State.APPROVED


def fanout_statement(rt: Runtime, found: fanouts.Fanout, sender: str | None) -> bytes:
    """The one statement of a fan-out: every child with its member, rows, size and SHA-256.

    Witnesses sign it once; the signature approves every child, and a child whose bytes are
    not the ones listed is refused before sealing (approval.void) and on arrival.
    """
    # Imported here: the splitting code (code lists, check digits) is for fan-outs only, not
    # for approving a transfer of its own.
    from gateway.exchange import fanout
    from policies.splitting import HOW

    agreement = rt.agreements[found.agreement]
    flow = agreement.flow(found.flow)
    withheld = ",".join(f"{k}={v}" for k, v in sorted(found.withheld.items())) or "none"
    lines = [
        "tachiai approval statement v1",
        f"fanout: {found.id}",
        f"agreement: {found.agreement}",
        f"flow: {found.flow}",
        f"provider: {rt.settings.party}",
        f"recipient: {flow.recipient}",
        f"sender: {sender or '-'}",
        f"fanout-parent-sha256: {found.parent_sha256}",
        f"fanout-rows: {found.rows}",
        f"fanout-withheld: {withheld}",
    ]
    if agreement.dataset_of(flow).format == "xlsx":
        # A workbook cannot be cut byte for byte: the witnesses see that each part was written
        # again (policies.splitting.split_xlsx), its bytes being the ones listed below.
        lines.append(f"fanout-parts: {HOW['xlsx']}")
    for child in found.children:
        t = rt.store.get(child.transfer)
        key, value = fanout.child_line(child.member, t.id, child.rows, child.size, child.sha256,
                                t.file_name)
        lines.append(f"{key}: {value}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def fanout_children(rt: Runtime, ref: str) -> list[str] | None:
    """The child transfers of the fan-out `ref` names (its id, or any child's id), in member
    order; None when `ref` is neither."""
    found = fanouts.get(rt.store, ref) if ref.startswith("f-") else fanouts.of_transfer(
        rt.store, ref)
    return None if found is None else [c.transfer for c in found.children]


def approve_parts(rt: Runtime, ref: str, submit: Callable[[str], ApprovalOutcome]
                  ) -> tuple[ApprovalOutcome, int]:
    """Approve what `ref` names with `submit` (an approval of one transfer): the transfer, or
    for a fan-out's id every part that awaits witnesses (none waiting: the first part, which
    says why), as the daemon's approvals folder does. The first part's outcome and how many
    parts were approved.

    Raises:
        as `submit`; for several parts, after every part was tried, the first refusal, saying
        how many parts were not approved.
    """
    children = fanout_children(rt, ref) if ref.startswith("f-") else None
    if children is None:
        return submit(ref), 1
    waiting = [c for c in children if rt.store.get(c).status is State.AWAITING_APPROVAL]
    targets = waiting or children[:1]
    outcomes: list[ApprovalOutcome] = []
    refused: list[TachiaiError] = []
    for target in targets:
        try:
            outcomes.append(submit(target))
        except (CheckFailed, InputError, StateError) as exc:  # the others are tried still
            refused.append(exc)
    if not refused:
        return outcomes[0], len(outcomes)
    first = refused[0]
    if len(targets) == 1:
        raise first
    raise type(first)(N_("{count} of {total} part(s) of the fan-out not approved: {message}")
                      .format(count=len(refused), total=len(targets), message=first),
                      hint=first.hint) from first


def statement(rt: Runtime, transfer: Transfer, *, rejection_reason: str | None = None,
              duplicate_lines: Sequence[str] | None = None,
              link: replies.Link = replies.UNREAD) -> bytes:
    """The exact bytes a witness signs for this transfer (a rejection adds its reason).

    `duplicate_lines` stand in for the duplicate notice's line as read here: that line as the
    caller read it (`duplicates.lines_of`), or what the statement said before a duplicate
    appeared (gateway.outbound.reapproval), which is never what a witness signs.
    `link`: the transfer's reply link as the calling step read it (read here when not given).
    """
    agreement, group_flow = rt.agreement_flow(transfer.agreement, transfer.flow)
    flow = agreement.flow_for(group_flow, transfer.provider, transfer.recipient)
    found = fanout_of(rt, transfer, agreement, group_flow) if rejection_reason is None else None
    if found is not None:
        # A fan-out's child: one statement for every child (gateway.forwarding).
        return fanout_statement(rt, found, transfer.sender)
    title = "rejection" if rejection_reason is not None else "approval"
    lines = [
        f"tachiai {title} statement v1",
        f"transfer: {transfer.id}",
        f"agreement: {transfer.agreement}",
        f"flow: {transfer.flow}",
        f"provider: {flow.provider}",
        f"recipient: {flow.recipient}",
        f"sender: {transfer.sender or '-'}",
        f"file-name: {transfer.file_name}",
        f"size: {transfer.size}",
        f"sha256: {transfer.sha256}",
    ]
    # A reply (疑義照会・回答) or a correction (訂正) names what it answers, so the witnesses
    # approve the link too; a transfer without one has exactly the lines it always had.
    lines.extend(replies.statement_lines(rt, transfer.id, link=link))
    lines.extend(duplicates.statement_lines(rt, transfer) if duplicate_lines is None
                 else duplicate_lines)  # only when already delivered
    if rejection_reason is not None:
        lines.append(f"reason: {' '.join(rejection_reason.split())}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def fanout_of(rt: Runtime, transfer: Transfer, agreement: Agreement,
              flow: Flow) -> fanouts.Fanout | None:
    """The fan-out `transfer` (on `flow` of `agreement`, as the agreement names it) is a child
    of, or None: read only on a flow to a party group, the only flow a fan-out is made on
    (`gateway.forwarding` refuses any other), so a transfer of its own costs no read.

    A groups file changed since a fan-out was made, so that its flow no longer goes to a group,
    makes its children's statements those of transfers of their own, which their witnesses
    never signed: they are refused at sealing and delivery (fail closed), never sent.
    """
    if flow.recipient not in agreement.groups:
        return None
    return fanouts.of_transfer(rt.store, transfer.id)


def authorize(rt: Runtime, transfer: Transfer, sha256: str, size: int) -> Reason | None:
    """Re-derive the witnessed approval from evidence, for the bytes actually sealed.

    The state database says "approved", but whoever can write it could say so falsely or swap
    the recorded hash. So before anything leaves, every stored signature is verified again over
    the statement of the sealed bytes (hash and size computed while sealing, parties from the
    agreement), each signer is mapped through the registry and checked as a witness, and the
    quorum is counted again. None means approved; otherwise the reason it is not.
    """
    agreement, flow = rt.agreement_flow(transfer.agreement, transfer.flow)
    flow = agreement.flow_for(flow, transfer.provider, transfer.recipient)
    sealed = transfer.model_copy(update={"sha256": sha256, "size": size})
    # The statement's rows (link, duplicates) and the approvals counted over it: one read
    # transaction, in this step (never a value read before it: links, approvals and fan-outs
    # change between steps).
    with rt.store.snapshot("read the approvals of what is sealed"):
        counted = list(counting(rt, sealed, statement(rt, sealed)).values())
    if quorum_reached(flow, counted, transfer.sender):
        return None
    return Reason(
        "approval.missing", N_("only {count} of {needed} required witness signature(s) verify "
                               "over the bytes to be sent; nothing was sent. Drop the file again "
                               "and have it approved anew").format(count=len(counted),
                                                                   needed=flow.witnesses),
        f"{transfer.agreement}/flows.{transfer.flow}.witnesses")


def counting(rt: Runtime, transfer: Transfer, message: bytes) -> dict[int, str]:
    """The stored approvals of `transfer` that count over `message`, by id, each with its
    witness: every signature verified again, its signer mapped through the registry (never the
    stored name) and checked as a witness today."""
    agreement, flow = rt.agreement_flow(transfer.agreement, transfer.flow)
    flow = agreement.flow_for(flow, transfer.provider, transfer.recipient)
    counted: dict[int, str] = {}
    today = clock.today()
    for approval in rt.store.approvals(transfer.id):
        try:
            signed = sshsig.verify(message, approval.signature, APPROVAL_NAMESPACE)
        except SignatureError:
            continue  # made over other bytes: it approves nothing here
        witness = rt.registry.by_key(signed.public_key)
        # A security key's flags (touch, PIN) are part of what the agreement asks of a witness.
        if (witness_refusal(agreement, flow, witness, transfer.sender, list(counted.values()),
                            today) is None
                and key_proof_refusal(agreement, signed.sk_flags) is None):
            assert witness is not None and approval.id is not None
            counted[approval.id] = witness.name
    return counted


def approve(rt: Runtime, transfer_id: str, signature: str, *,
            duplicate_ok: bool = False, flush: bool = True) -> ApprovalOutcome:
    """Check a witness's signature and count it; approve the transfer at quorum.

    The approval and its events commit together; `flush=False` leaves moving the events into
    the ledger to the caller (`rt.flush()` once after a batch: the next flush of any process
    moves them, so nothing is lost if it never comes).

    Raises:
        StateError: the transfer is not waiting for approval.
        SignatureError: the signature is malformed, under another namespace, or over other bytes.
        CheckFailed: the signer may not witness this transfer, or it is a reply (疑義照会・回答)
            not yet linked to what it answers (the rule is in the message; nothing counted),
            or its bytes were already delivered on the flow and `duplicate_ok` is not given.
    """
    transfer = rt.store.get(transfer_id)
    if transfer.status is not State.AWAITING_APPROVAL:
        _refuse_state(rt, transfer, Reason(
            "approval.state", N_("transfer {id} is {state}, not awaiting approval").format(
                id=transfer.id, state=transfer.state)), signature, APPROVAL_NAMESPACE,
            statement(rt, transfer),
            hint=N_("only transfers in state awaiting_approval can be approved"))
    _require_whole_fanout(rt, transfer, signature)
    agreement, flow = rt.agreement_flow(transfer.agreement, transfer.flow)
    flow = agreement.flow_for(flow, transfer.provider, transfer.recipient)
    # What the statement is made of, read as of one moment (one read transaction). Reads only:
    # the refusals below record (and flush) after it.
    with rt.store.snapshot("read the transfer's statement"):
        # 疑義照会・回答: a reply is approved only with its link in the statement. Read before
        # the statement is made: a link, once fixed, is never removed.
        unlinked = replies.unlinked_reply(rt, transfer)
        earlier = duplicates.earlier_delivery(rt, transfer)
        # Once, before the write transaction below; its duplicate line from `earlier`.
        message = statement(rt, transfer, duplicate_lines=duplicates.lines_of(earlier))
    signed = _verify_or_record(rt, transfer, message, signature, APPROVAL_NAMESPACE)
    witness = rt.registry.by_key(signed.public_key)
    if unlinked is not None:  # refused before anything is counted
        _refuse(rt, transfer, replies.link_first(unlinked, transfer.id), signed.fingerprint,
                witness.name if witness else None)
    if earlier is not None and not duplicate_ok:
        _refuse(rt, transfer, duplicates.refusal(earlier, transfer), signed.fingerprint,
                witness.name if witness else None)
    now = clock.now_ns()
    with rt.store.transaction() as conn:
        already = rt.store.approvers(conn, transfer.id)
        refusal = witness_refusal(agreement, flow, witness, transfer.sender, already,
                                  clock.today()) or key_proof_refusal(agreement, signed.sk_flags)
        if refusal is None:
            assert witness is not None
            rt.store.add_approval(Approval(
                transfer_id=transfer.id, witness=witness.name, fingerprint=signed.fingerprint,
                sha256=transfer.sha256 or "", signature=signature, created_ns=now), conn)
            names = (*already, witness.name)
            # A statement with a duplicate-of line is another statement: its approval (and the
            # approval of the transfer) are events of their own, also after the approvals of
            # one without it were set aside (gateway.outbound.reapproval).
            tail = f":{DUPLICATE_KEY}:{earlier.id}" if earlier else ""
            events = [event("approval.accepted", transfer, {
                "witness": witness.name, "fingerprint": signed.fingerprint,
                "sha256": transfer.sha256, "statement": message.decode("utf-8"),
                "signature": signature, "namespace": APPROVAL_NAMESPACE,
                **({"duplicate_of": earlier.id, "duplicate_ok": True} if earlier else {}),
            }, actor=witness.name, key=f"{transfer.id}:approval:{witness.name}{tail}",
                time_ns=now)]
            if quorum_reached(flow, names, transfer.sender):
                events.append(event("transfer.approved", transfer, {
                    "witnesses": list(names), "required": flow.witnesses}, time_ns=now,
                    key=f"{transfer.id}:transfer.approved{tail}"))
                transfer = rt.store.transition(transfer, State.APPROVED, events, conn,
                                               **_decided(transfer))
            else:
                rt.store.record(events, conn)
    if refusal is not None:
        _refuse(rt, transfer, refusal, signed.fingerprint, witness.name if witness else None)
    assert witness is not None
    if flush:
        rt.flush()
    log.info("transfer %s approved by %s (%d of %d)", transfer.id, witness.name, len(names),
             flow.witnesses)
    return ApprovalOutcome(transfer, witness.name, names, flow.witnesses)


def approve_with_key(rt: Runtime, transfer_id: str, key: PrivateKey, *,
                     duplicate_ok: bool = False, flush: bool = True) -> ApprovalOutcome:
    """Sign the transfer's statement now with a witness's key (loaded once by the caller for
    any number of transfers) and submit it as `approve` does.

    Raises:
        as `approve`; NotFound when there is no such transfer.
    """
    message = statement(rt, rt.store.get(transfer_id))
    return approve(rt, transfer_id, sshsig.sign(message, key, APPROVAL_NAMESPACE),
                   duplicate_ok=duplicate_ok, flush=flush)


def reject(rt: Runtime, transfer_id: str, signature: str, reason: str) -> Transfer:
    """A designated sender or witness of the providing party stops a transfer.

    Raises:
        StateError: the transfer is already delivered or rejected.
        SignatureError / CheckFailed: as for `approve`.
    """
    transfer = rt.store.get(transfer_id)
    if contains_my_number(reason):
        message = N_("the reason contains what looks like a My Number (個人番号)")
        # Recorded without the reason: it holds the very number refused here.
        _record_refusal(rt, transfer, Reason("rejection.personal-data", message), None, None)
        raise UsageError(message, hint=N_("describe the problem without personal data"))
    if transfer.status not in _REJECTABLE:
        _refuse_state(rt, transfer, Reason(
            "rejection.state", N_("transfer {id} is {state} and can no longer be rejected")
            .format(id=transfer.id, state=transfer.state)), signature, REJECTION_NAMESPACE,
            statement(rt, transfer, rejection_reason=reason))
    agreement, flow = rt.agreement_flow(transfer.agreement, transfer.flow)
    flow = agreement.flow_for(flow, transfer.provider, transfer.recipient)
    signed = _verify_or_record(rt, transfer, statement(rt, transfer, rejection_reason=reason),
                               signature, REJECTION_NAMESPACE)
    person = rt.registry.by_key(signed.public_key)
    today = clock.today()
    if person is None or person.party != flow.provider or not (
        person.designated(agreement.id, "witness", today)
        or person.designated(agreement.id, "send", today)
    ):
        _refuse(rt, transfer, Reason("rejection.not-designated", N_("only a designated sender or "
                                     "witness of the providing party can reject a transfer")),
                signed.fingerprint, person.name if person else None)
    assert person is not None
    reason_text = " ".join(reason.split())
    transfer = rt.store.transition(transfer, State.REJECTED, [event(
        "transfer.rejected", transfer, {
            "reasons": [Reason("rejection.by-handler", reason_text).as_dict()],
            "by": person.name, "fingerprint": signed.fingerprint, "signature": signature,
        }, actor=person.name)],
        reasons=json.dumps([Reason("rejection.by-handler", reason_text).as_dict()],
                           ensure_ascii=False))
    rt.flush()
    return transfer


def _decided(transfer: Transfer) -> dict[str, Any]:
    """The change approval makes to a transfer's reasons: why it waited again, now answered
    (gateway.outbound.reapproval), is no longer one."""
    if not duplicates.waits_again(transfer):
        return {}
    return {"reasons": json.dumps(duplicates.other_reasons(transfer), ensure_ascii=False)}


def _verify_or_record(
    rt: Runtime, transfer: Transfer, message: bytes, signature: str, namespace: str
) -> sshsig.Signed:
    try:
        return sshsig.verify(message, signature, namespace)
    except SignatureError as exc:
        _record_refusal(rt, transfer, Reason("approval.signature", str(exc)), None, None)
        raise


def _refuse(rt: Runtime, transfer: Transfer, reason: Reason, fingerprint: str | None,
            signer: str | None) -> None:
    _record_refusal(rt, transfer, reason, fingerprint, signer)
    raise CheckFailed(N_("refused: {message} [{rule}]").format(message=reason.message,
                                                               rule=reason.rule))


#: Where every child of a fan-out must stand before any of them is approved: checked, and
#: waiting for (or past) the one decision.
_CHECKED = (State.AWAITING_APPROVAL, State.APPROVED, State.SEALED, State.DELIVERED,
            State.ACKNOWLEDGED)


def fanout_whole(rt: Runtime, fanout_id: str) -> bool:
    """Whether every part of the fan-out is checked (none is approved before: see
    `_require_whole_fanout`)."""
    found = fanouts.get(rt.store, fanout_id)
    return found is not None and all(
        rt.store.get(child.transfer).status in _CHECKED for child in found.children)


def record_refusal(rt: Runtime, transfer: Transfer, reason: Reason, *,
                   flush: bool = True) -> None:
    """Record an attempt to approve refused before its signature was read (the file that
    should have held it is not one): `approval.refused`, with no signer."""
    _record_refusal(rt, transfer, reason, None, None, flush=flush)


def _require_whole_fanout(rt: Runtime, transfer: Transfer, signature: str) -> None:
    """A fan-out's child is approved only when every child is checked: never a partial
    fan-out (a forward killed mid-way is finished or undone by `gateway.forwarding.recover`).

    Raises:
        StateError: a child is not checked or was rejected (recorded as approval.refused).
    """
    found = fanouts.of_transfer(rt.store, transfer.id)
    if found is None:
        return
    for child in found.children:
        sibling = transfer if child.transfer == transfer.id else rt.store.get(child.transfer)
        if sibling.status not in _CHECKED:
            _refuse_state(rt, transfer, Reason("fanout.incomplete", N_(
                "fan-out {fanout} is not whole: the part for {member} ({id}) is {state}; no "
                "part is approved until every part is checked").format(
                    fanout=found.id, member=child.member, id=sibling.id, state=sibling.state)),
                signature, APPROVAL_NAMESPACE, statement(rt, transfer),
                hint=N_("run `tachiai holdings forward HOLDING` again to finish it, or reject "
                        "the fan-out and forward the holding anew"))


def _refuse_state(rt: Runtime, transfer: Transfer, reason: Reason, signature: str,
                  namespace: str, message: bytes, hint: str | None = None) -> NoReturn:
    """Record a request refused for the transfer's state, naming the signer when the signature
    verifies (a bad one changes nothing: the state is the refusal), then raise it.

    Raises:
        StateError: always.
    """
    try:
        signed: sshsig.Signed | None = sshsig.verify(message, signature, namespace)
    except SignatureError:
        signed = None
    person = rt.registry.by_key(signed.public_key) if signed is not None else None
    _record_refusal(rt, transfer, reason, signed.fingerprint if signed else None,
                    person.name if person else None)
    raise StateError(reason.message, hint=hint)


def _record_refusal(rt: Runtime, transfer: Transfer, reason: Reason, fingerprint: str | None,
                    signer: str | None, *, flush: bool = True) -> None:
    rt.store.record([event("approval.refused", transfer, {
        "reason": reason.as_dict(), "fingerprint": fingerprint, "signer": signer,
    }, actor=signer, key=f"{transfer.id}:approval-refused:{secrets.token_hex(8)}")])
    if flush:
        rt.flush()
    log.warning("approval of %s refused: %s", transfer.id, reason.rule, extra=RAISED_TOO)
