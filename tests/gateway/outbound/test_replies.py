"""Reply threads across two gateways: an inquiry (疑義照会) about a holding, its answer (回答),
and a correction (訂正) that supersedes what it corrects until its recipients certify it was
applied. Links are fixed before approval and signed by the witnesses as part of the statement.
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import update

from gateway.errors import CheckFailed, StateError
from gateway.identity import sshsig
from gateway.identity.sshkeys import load_private_key
from gateway.inbound import holdings
from gateway.inbound.certificates import CERTIFICATE_NAMESPACE, certificate_statement, certify
from gateway.inbound.holdings import Holding, HoldingState
from gateway.outbound import approvals, pipeline, replies
from gateway.outbound.lifecycle import State
from gateway.outbound.replies import link_transfer
from gateway.state import clock, schema
from tests.conftest import Demo
from tests.gateway.inbound.test_holdings_pair import (
    AGREEMENT,
    OTHER_ROWS,
    ROWS,
    Pair,
    csv_bytes,
    pair,
)

__all__ = ["pair"]


def _inquiry(pair: Pair, about: Holding) -> tuple[str, Holding]:
    """nhi-central asks isa about a holding; returns (inquiry transfer id, isa's holding)."""
    t = pair.drop(pair.recipient, csv_bytes(ROWS[:1]), flow="inquiry", name="inquiry.csv")
    link_transfer(pair.recipient.rt, t.id, "replies_to", about.id, "kobayashi")
    done = pair.approve(pair.recipient, t, "yamada")
    assert done.status is State.DELIVERED, done.reasons
    (at_isa,) = pair.receive(pair.provider)
    return t.id, at_isa


def test_an_inquiry_is_answered_and_both_sides_see_the_thread(pair: Pair) -> None:
    first = pair.send(csv_bytes(ROWS))
    (h1,) = pair.receive()
    inquiry_id, at_isa = _inquiry(pair, h1)
    statement = approvals.statement(pair.recipient.rt, pair.recipient.rt.store.get(inquiry_id))
    assert f"replies-to: {first.id}\n".encode() in statement, "the witness signed the link"
    assert at_isa.status is HoldingState.RECEIVED
    assert (at_isa.flow, at_isa.provider, at_isa.replies_to) == ("inquiry", "nhi-central", first.id)
    assert {
        "relation": "replies to",
        "id": first.id,
        "what": "our transfer, delivered",
    } in replies.thread(pair.provider.rt, at_isa)

    answer = pair.drop(pair.provider, csv_bytes(ROWS[:1]), flow="answer", name="answer.csv")
    link = link_transfer(pair.provider.rt, answer.id, "replies_to", at_isa.id, "sato")
    assert link.remote == inquiry_id, "isa names the inquiry by the id nhi-central knows"
    assert pair.approve(pair.provider, answer, "suzuki").status is State.DELIVERED
    h_answer = next(h for h in pair.receive() if h.flow == "answer")
    assert h_answer.replies_to == inquiry_id
    thread = replies.thread(pair.recipient.rt, h_answer)
    assert {"relation": "replies to", "id": inquiry_id, "what": "our transfer, delivered"} in thread
    assert {
        "relation": "answered by",
        "id": inquiry_id,
        "what": "our transfer, delivered",
    } in replies.thread(pair.recipient.rt, h1)
    received = [e for e in pair.recipient.rt.ledger.events() if e.kind == "holding.received"]
    assert received[-1].data["replies_to"] == {"transfer": inquiry_id, "here": inquiry_id}
    linked = [e for e in pair.provider.rt.ledger.events() if e.kind == "transfer.linked"]
    assert linked[0].data["remote_transfer"] == inquiry_id


def test_a_reply_without_a_link_is_never_approved(pair: Pair) -> None:
    rt = pair.provider.rt
    answer = pair.drop(pair.provider, csv_bytes(ROWS[:1]), flow="answer", name="answer.csv")
    with pytest.raises(CheckFailed, match=r"reply\.unlinked") as refused:
        pair.approve(pair.provider, answer, "suzuki")
    assert f"tachiai transfers link {answer.id} --replies-to" in str(refused.value)
    after = pipeline.advance(rt, rt.store.get(answer.id))
    assert after.status is State.AWAITING_APPROVAL and rt.store.approvals(answer.id) == []
    kinds = [e.kind for e in rt.ledger.events() if e.subject == answer.id]
    assert "approval.refused" in kinds and "approval.accepted" not in kinds
    assert list(pair.recipient.inbox.iterdir()) == []


def test_a_reply_whose_link_changed_after_approval_never_leaves(pair: Pair) -> None:
    """The last line of defence: delivery checks the link again. Its flow is changed in the
    database after the witness approved (the signed statement names only the transfer)."""
    pair.send(csv_bytes(ROWS))
    (h1,) = pair.receive()
    rt = pair.recipient.rt
    inquiry = pair.drop(pair.recipient, csv_bytes(ROWS[:1]), flow="inquiry", name="q.csv")
    link_transfer(rt, inquiry.id, "replies_to", h1.id, "kobayashi")
    approvals.approve(
        rt,
        inquiry.id,
        sshsig.sign(
            approvals.statement(rt, rt.store.get(inquiry.id)),
            load_private_key(pair.key("yamada")),
            approvals.APPROVAL_NAMESPACE,
        ),
    )
    with rt.store.transaction() as conn:
        conn.execute(
            update(schema.LINKS)
            .where(schema.LINKS.c.transfer == inquiry.id)
            .values(ref_flow="inquiry")
        )
    done = pipeline.advance(rt, rt.store.get(inquiry.id))
    assert done.status is State.REJECTED
    assert [r["rule"] for r in done.reason_list()] == ["reply.unlinked"]
    assert list(pair.provider.inbox.iterdir()) == []


def test_the_delivery_reads_the_link_again_after_the_seal(pair: Pair) -> None:
    """A link is read by each step for itself: one changed after the seal authorized the
    transfer (its statement unchanged, so its approval still verifies) is what the delivery
    checks, and the reply never leaves."""
    pair.send(csv_bytes(ROWS))
    (h1,) = pair.receive()
    rt = pair.recipient.rt
    inquiry = pair.drop(pair.recipient, csv_bytes(ROWS[:1]), flow="inquiry", name="q.csv")
    link_transfer(rt, inquiry.id, "replies_to", h1.id, "kobayashi")
    approvals.approve(rt, inquiry.id, sshsig.sign(
        approvals.statement(rt, rt.store.get(inquiry.id)), load_private_key(pair.key("yamada")),
        approvals.APPROVAL_NAMESPACE))
    sealed = pipeline.advance(rt, rt.store.get(inquiry.id), states=(State.APPROVED,))
    assert sealed.status is State.SEALED, sealed.reasons
    with rt.store.transaction() as conn:
        conn.execute(update(schema.LINKS).where(schema.LINKS.c.transfer == inquiry.id)
                     .values(ref_flow="inquiry"))
    done = pipeline.advance(rt, rt.store.get(inquiry.id))
    assert done.status is State.REJECTED
    assert [r["rule"] for r in done.reason_list()] == ["reply.unlinked"]
    assert list(pair.provider.inbox.iterdir()) == []


def test_the_cli_refuses_to_approve_an_unlinked_reply_until_it_is_linked(pair: Pair) -> None:
    first = pair.send(csv_bytes(ROWS))
    (h1,) = pair.receive()
    nhi = Demo(pair.recipient.root)
    rt = pair.recipient.rt
    inquiry = pair.drop(pair.recipient, csv_bytes(ROWS[:1]), flow="inquiry", name="q.csv")
    link_first = f"run `tachiai transfers link {inquiry.id} --replies-to HOLDING_OR_TRANSFER` first"
    (checked,) = [
        e for e in rt.ledger.events() if e.kind == "transfer.checked" and e.subject == inquiry.id
    ]
    assert [n["rule"] for n in checked.data["notices"]] == ["reply.unlinked"]
    assert link_first in nhi.cli("transfers", "show", inquiry.id, check=True).stdout

    refused = nhi.cli("approve", inquiry.id, "--key", str(pair.key("yamada")))
    assert refused.returncode == 1, refused.stderr
    assert link_first in refused.stderr and "[reply.unlinked]" in refused.stderr
    shown = nhi.show(inquiry.id)
    assert (shown["state"], shown["approvals"]) == ("awaiting_approval", [])
    (event,) = [
        e for e in rt.ledger.events() if e.kind == "approval.refused" and e.subject == inquiry.id
    ]
    assert event.data["reason"]["rule"] == "reply.unlinked" and event.data["signer"] == "yamada"

    nhi.cli("transfers", "link", inquiry.id, "--replies-to", h1.id, check=True)
    assert link_first not in nhi.cli("transfers", "show", inquiry.id, check=True).stdout
    approved = nhi.cli("approve", inquiry.id, "--key", str(pair.key("yamada")), check=True)
    assert f"transfer {inquiry.id} is approved" in approved.stdout
    done = pipeline.advance(rt, rt.store.get(inquiry.id))
    assert done.status is State.DELIVERED, done.reasons
    (at_isa,) = pair.receive(pair.provider)
    assert (at_isa.flow, at_isa.replies_to) == ("inquiry", first.id)


def test_links_that_the_agreement_does_not_allow_are_refused(pair: Pair) -> None:
    first = pair.send(csv_bytes(ROWS))
    (h1,) = pair.receive()
    rt = pair.provider.rt
    answer = pair.drop(pair.provider, csv_bytes(ROWS[:1]), flow="answer", name="answer.csv")
    with pytest.raises(CheckFailed, match=r"reply\.unlinked"):  # answers no inquiry
        link_transfer(rt, answer.id, "replies_to", first.id, "sato")
    with pytest.raises(CheckFailed, match=r"correction\.flow"):
        link_transfer(rt, answer.id, "corrects", first.id, "sato")
    inquiry = pair.drop(pair.recipient, csv_bytes(ROWS[:1]), flow="inquiry", name="q.csv")
    with pytest.raises(CheckFailed, match=r"correction\.not-ours"):
        link_transfer(pair.recipient.rt, inquiry.id, "corrects", h1.id, "kobayashi")
    fixed = pair.drop(pair.provider, csv_bytes(OTHER_ROWS), name="fixed.csv")
    approvals.approve(
        rt,
        fixed.id,
        sshsig.sign(
            approvals.statement(rt, fixed),
            load_private_key(pair.key("suzuki")),
            approvals.APPROVAL_NAMESPACE,
        ),
    )
    with pytest.raises(StateError):  # after a witness approved: the statement is fixed
        link_transfer(rt, fixed.id, "corrects", first.id, "sato")


def test_a_correction_supersedes_the_holding_until_it_is_certified_applied(pair: Pair) -> None:
    first = pair.send(csv_bytes(ROWS))
    (h1,) = pair.receive()
    fixed = pair.drop(pair.provider, csv_bytes(OTHER_ROWS), name="status-change-fixed.csv")
    link_transfer(pair.provider.rt, fixed.id, "corrects", first.id, "sato")
    assert pair.approve(pair.provider, fixed, "suzuki").status is State.DELIVERED
    h2 = next(h for h in pair.receive() if h.id != h1.id)
    assert h2.corrects == first.id
    assert holdings.get(pair.recipient.rt, h1.id).superseded_by == h2.id
    kinds = [e.kind for e in pair.recipient.rt.ledger.events()]
    assert "holding.superseded" in kinds
    on = clock.today()
    method = "applied to the eligibility records"
    statement = certificate_statement(h2, "applied", method, on)
    after = certify(
        pair.recipient.rt,
        h2.id,
        "applied",
        method,
        on,
        sshsig.sign(statement, load_private_key(pair.key("takahashi")), CERTIFICATE_NAMESPACE),
    )
    assert after.applied_ns is not None and after.status is HoldingState.RECEIVED
    with pytest.raises(StateError):
        certify(pair.recipient.rt, h2.id, "applied", method, on, "x")
    cert = [e for e in pair.recipient.rt.ledger.events() if e.kind == "holding.certified"]
    assert cert[0].data["kind"] == "applied" and cert[0].actor == "takahashi"


def test_a_correction_is_refused_where_the_agreement_provides_for_none(pair: Pair) -> None:
    first = pair.send(csv_bytes(ROWS))
    rt = pair.provider.rt
    rt.agreements = {AGREEMENT: dataclasses.replace(rt.agreements[AGREEMENT], corrections=False)}
    fixed = pair.drop(pair.provider, csv_bytes(OTHER_ROWS), name="fixed.csv")
    with pytest.raises(CheckFailed, match=r"correction\.not-agreed"):
        link_transfer(rt, fixed.id, "corrects", first.id, "sato")
    assert replies.link_of(rt, fixed.id) is None
