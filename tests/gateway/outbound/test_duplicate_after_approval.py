"""A duplicate that appears after approval: the transfer goes back to its witnesses.

Two files with the same bytes, both approved by a real `ssh-keygen -Y sign` signature; the first
is delivered, so the second's statement gains its `duplicate-of` line and its approval no longer
verifies at sealing. It is not rejected: its approval is set aside (kept, and named in the
ledger) and it waits for its witnesses again. Any other reason a signature stops counting stays
`approval.missing`, and neither an old signature nor a row written behind the gateway's back
gets anything sent. The pipeline runs in this process, step by step, on the demo gateway.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.config.settings import load_settings
from gateway.errors import CheckFailed, SignatureError, StateError
from gateway.outbound import approvals, pipeline, reapproval
from gateway.outbound.intake import Outbox
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime
from gateway.state.rows import Transfer
from policies.handlers import Registry
from policies.terms import WitnessKeys
from tests.conftest import AGREEMENT, FLOW, GOOD_ROWS, Demo, csv_bytes, sealed_files

DATA = csv_bytes(GOOD_ROWS)
APPEARED = "approval.duplicate-appeared"


@pytest.fixture
def rt(demo: Demo) -> Runtime:
    return Runtime.open(load_settings(demo.config))


def take_in(rt: Runtime, demo: Demo, name: str, data: bytes = DATA) -> Transfer:
    path = demo.drop(name, data)
    t = pipeline.take_in(rt, Outbox(AGREEMENT, FLOW, demo.outbox), path)
    assert t is not None and t.status is State.AWAITING_APPROVAL, t and t.reasons
    return t


def signature(rt: Runtime, demo: Demo, transfer_id: str, witness: str) -> str:
    """A witness's signature over the statement as it reads now, made by ssh-keygen itself."""
    message = approvals.statement(rt, rt.store.get(transfer_id))
    return demo.sign_with_ssh_keygen(message, witness).read_text()


def approve(rt: Runtime, demo: Demo, transfer_id: str, witness: str = "suzuki",
            **kw: Any) -> approvals.ApprovalOutcome:
    return approvals.approve(rt, transfer_id, signature(rt, demo, transfer_id, witness), **kw)


def advance(rt: Runtime, transfer_id: str) -> Transfer:
    return pipeline.advance(rt, rt.store.get(transfer_id))


def ledger(rt: Runtime, subject: str, kind: str) -> list[Any]:
    return [e for e in rt.ledger.events() if e.subject == subject and e.kind == kind]


def both_approved(rt: Runtime, demo: Demo) -> tuple[Transfer, Transfer]:
    """Two files with the same bytes, each approved before either was delivered."""
    first, second = take_in(rt, demo, "a.csv"), take_in(rt, demo, "b.csv")
    assert approve(rt, demo, first.id).approved
    assert approve(rt, demo, second.id).approved
    return first, second


def test_the_second_goes_back_to_its_witnesses_with_the_duplicate_notice(
    rt: Runtime, demo: Demo
) -> None:
    first, second = both_approved(rt, demo)
    old = rt.store.approvals(second.id)
    assert advance(rt, first.id).status is State.DELIVERED

    back = advance(rt, second.id)
    assert back.status is State.AWAITING_APPROVAL
    assert approvals.statement(rt, back).endswith(f"duplicate-of: {first.id}\n".encode())
    # The approval no longer counts and is not deleted: kept with when and why.
    assert rt.store.approvals(second.id) == []
    (kept,) = rt.store.approvals_set_aside(second.id)
    assert (kept["witness"], kept["signature"], kept["created_ns"]) == (
        "suzuki", old[0].signature, old[0].created_ns)
    assert (kept["rule"], kept["duplicate_of"]) == (APPEARED, first.id)
    # Nothing sealed is left behind, and only the first file reached the partner.
    assert not list((demo.spool / second.id).glob("sealed*"))
    assert not (demo.spool / second.id / "password").exists()
    assert len(sealed_files(demo.inbox)) == 1

    (voided,) = ledger(rt, second.id, "approval.voided")
    assert voided.data["rule"] == APPEARED and voided.data["duplicate_of"] == first.id
    assert voided.data["signed_duplicate_of"] == [None]
    assert [a["witness"] for a in voided.data["set_aside"]] == ["suzuki"]
    assert voided.data["set_aside"][0]["fingerprint"] == old[0].fingerprint
    assert voided.data["statement"].endswith(f"duplicate-of: {first.id}\n")
    assert not ledger(rt, second.id, "transfer.rejected")
    # `transfers show` reads why it waits again from the transfer's reasons.
    (why,) = [r for r in back.reason_list() if r["rule"] == APPEARED]
    assert first.id in why["message"] and "suzuki" in why["message"]
    assert f"tachiai approve {second.id} --key KEY --duplicate-ok" in why["hint"]
    rt.ledger.verify()


def test_a_new_approval_of_the_new_statement_delivers_it(rt: Runtime, demo: Demo) -> None:
    first, second = both_approved(rt, demo)
    advance(rt, first.id)
    stale = rt.store.approvals(second.id)[0].signature
    assert advance(rt, second.id).status is State.AWAITING_APPROVAL

    # The old signature, replayed, is over the statement without the line: refused.
    with pytest.raises(SignatureError):
        approvals.approve(rt, second.id, stale, duplicate_ok=True)
    # A new one without --duplicate-ok is refused as for any duplicate.
    with pytest.raises(CheckFailed, match=r"approval\.duplicate-file"):
        approve(rt, demo, second.id)
    assert rt.store.get(second.id).status is State.AWAITING_APPROVAL
    again = approve(rt, demo, second.id, duplicate_ok=True)
    assert again.approved
    assert not [r for r in again.transfer.reason_list() if r["rule"] == APPEARED]

    assert advance(rt, second.id).status is State.DELIVERED
    assert len(sealed_files(demo.inbox)) == 2
    accepted = ledger(rt, second.id, "approval.accepted")
    assert [e.data.get("duplicate_of") for e in accepted] == [None, first.id]
    assert len(ledger(rt, second.id, "transfer.approved")) == 2
    rt.ledger.verify()


def test_a_rejection_after_it_went_back_rejects_it(rt: Runtime, demo: Demo) -> None:
    first, second = both_approved(rt, demo)
    advance(rt, first.id)
    back = advance(rt, second.id)
    reason = "sent already"
    message = approvals.statement(rt, back, rejection_reason=reason)
    signed = demo.sign_with_ssh_keygen(message, "tanaka", approvals.REJECTION_NAMESPACE)
    done = approvals.reject(rt, second.id, signed.read_text(), reason)
    assert done.status is State.REJECTED
    assert advance(rt, second.id).status is State.REJECTED
    assert len(sealed_files(demo.inbox)) == 1
    rt.ledger.verify()


def test_two_witnesses_only_the_stale_approval_is_set_aside(rt: Runtime, demo: Demo) -> None:
    two = _with_witnesses(rt, 2)
    first, second = take_in(two, demo, "a.csv"), take_in(two, demo, "b.csv")
    for witness in ("suzuki", "tanaka"):
        approve(two, demo, first.id, witness)
    approve(two, demo, second.id, "suzuki")
    assert advance(two, first.id).status is State.DELIVERED
    # tanaka approves after the delivery: over the new statement, on purpose.
    assert approve(two, demo, second.id, "tanaka", duplicate_ok=True).approved

    assert advance(two, second.id).status is State.AWAITING_APPROVAL
    assert [a.witness for a in two.store.approvals(second.id)] == ["tanaka"]
    assert [a["witness"] for a in two.store.approvals_set_aside(second.id)] == ["suzuki"]
    assert approve(two, demo, second.id, "suzuki", duplicate_ok=True).approved
    assert advance(two, second.id).status is State.DELIVERED


def test_a_line_naming_another_delivery_of_the_same_bytes_goes_back_too(
    rt: Runtime, demo: Demo
) -> None:
    # The statement names the first delivered transfer in order of creation: one created
    # earlier but delivered later takes the line over.
    oldest, middle, last = (take_in(rt, demo, f"{n}.csv") for n in "abc")
    approve(rt, demo, middle.id)
    assert advance(rt, middle.id).status is State.DELIVERED
    for t in (oldest, last):  # both statements name `middle`; both sent again on purpose
        assert approve(rt, demo, t.id, duplicate_ok=True).approved
    assert advance(rt, oldest.id).status is State.DELIVERED
    assert advance(rt, last.id).status is State.AWAITING_APPROVAL
    (voided,) = ledger(rt, last.id, "approval.voided")
    assert voided.data["duplicate_of"] == oldest.id
    assert voided.data["signed_duplicate_of"] == [middle.id]


# -- every other reason a signature stops counting stays a rejection ----------------------------


def test_a_tampered_approval_row_stays_missing(rt: Runtime, demo: Demo) -> None:
    first, second = both_approved(rt, demo)
    advance(rt, first.id)
    # suzuki's genuine signature, but over the first transfer's statement: written into the
    # second's row behind the gateway's back.
    foreign = rt.store.approvals(first.id)[0].signature
    _sql(demo, "UPDATE approvals SET signature = ? WHERE transfer_id = ?", foreign, second.id)
    _rejected_missing(rt, demo, second.id)


def test_a_key_no_longer_designated_stays_missing(rt: Runtime, demo: Demo) -> None:
    first, second = both_approved(rt, demo)
    advance(rt, first.id)
    rt.registry = Registry(tuple(h for h in rt.registry.handlers if h.name != "suzuki"))
    _rejected_missing(rt, demo, second.id)


def test_a_key_the_agreement_no_longer_accepts_stays_missing(rt: Runtime, demo: Demo) -> None:
    first, second = both_approved(rt, demo)
    advance(rt, first.id)
    agreement = rt.agreements[AGREEMENT]
    rt.agreements = {**rt.agreements, AGREEMENT: dataclasses.replace(
        agreement, witness_keys=WitnessKeys(require_user_verification=True))}
    _rejected_missing(rt, demo, second.id)


def test_a_changed_file_stays_void(rt: Runtime, demo: Demo) -> None:
    first, second = both_approved(rt, demo)
    advance(rt, first.id)
    payload = demo.spool / second.id / "payload"
    changed = bytearray(payload.read_bytes())
    changed[-3] ^= 0x01
    payload.write_bytes(bytes(changed))
    done = advance(rt, second.id)
    assert done.status is State.REJECTED
    assert [r["rule"] for r in done.reason_list()] == ["approval.void"]


def test_without_a_duplicate_a_missing_approval_is_not_sent_back(
    rt: Runtime, demo: Demo
) -> None:
    # A statement without a duplicate-of line: reapproval has nothing to say.
    (only,) = [take_in(rt, demo, "a.csv")]
    approve(rt, demo, only.id)
    t = rt.store.get(only.id)
    assert reapproval.appeared(rt, t, t.sha256 or "", t.size or 0) is None
    _sql(demo, "UPDATE approvals SET signature = ? WHERE transfer_id = ?",
         signature(rt, demo, only.id, "tanaka").replace("A", "B", 1), only.id)
    _rejected_missing(rt, demo, only.id)


# -- an attacker who can write the state database ---------------------------------------------


def test_an_old_signature_written_into_the_row_sends_nothing(rt: Runtime, demo: Demo) -> None:
    """suzuki signed the second transfer's statement before the first was delivered, but never
    submitted it; whoever can write the database stores it and marks the transfer approved."""
    first, second = take_in(rt, demo, "a.csv"), take_in(rt, demo, "b.csv")
    captured = signature(rt, demo, second.id, "suzuki")
    approve(rt, demo, first.id)
    advance(rt, first.id)
    with pytest.raises(SignatureError):  # the gateway itself refuses it: the statement changed
        approvals.approve(rt, second.id, captured, duplicate_ok=True)
    good = rt.store.approvals(first.id)[0]
    _sql(demo, "INSERT INTO approvals (transfer_id, witness, fingerprint, sha256, signature, "
         "created_ns) VALUES (?, ?, ?, ?, ?, ?)", second.id, "suzuki", good.fingerprint,
         second.sha256, captured, good.created_ns)
    _sql(demo, "UPDATE transfers SET state = 'approved' WHERE id = ?", second.id)

    back = advance(rt, second.id)
    assert back.status is State.AWAITING_APPROVAL, "back to the witnesses, not sealed"
    assert len(sealed_files(demo.inbox)) == 1
    assert rt.store.approvals(second.id) == []
    # The witnesses must sign the statement that names the duplicate; the old one never counts.
    with pytest.raises(SignatureError):
        approvals.approve(rt, second.id, captured, duplicate_ok=True)
    _sql(demo, "UPDATE transfers SET state = 'approved' WHERE id = ?", second.id)
    again = advance(rt, second.id)  # approved with no approval at all: fail closed
    assert again.status is State.REJECTED
    assert [r["rule"] for r in again.reason_list()] == ["approval.missing"]
    assert len(sealed_files(demo.inbox)) == 1


def test_an_approved_state_with_only_set_aside_approvals_is_never_sealed(
    rt: Runtime, demo: Demo
) -> None:
    first, second = both_approved(rt, demo)
    advance(rt, first.id)
    advance(rt, second.id)
    _sql(demo, "INSERT INTO approvals (transfer_id, witness, fingerprint, sha256, signature, "
         "created_ns) SELECT transfer_id, witness, fingerprint, sha256, signature, created_ns "
         "FROM approvals_set_aside WHERE transfer_id = ?", second.id)
    _sql(demo, "UPDATE transfers SET state = 'approved' WHERE id = ?", second.id)
    # Moved back by hand, the stale approval sends the transfer back again, never out, and
    # the ledger says so each time.
    assert advance(rt, second.id).status is State.AWAITING_APPROVAL
    assert len(sealed_files(demo.inbox)) == 1
    assert len(ledger(rt, second.id, "approval.voided")) == 2
    assert len(rt.store.approvals_set_aside(second.id)) == 2


def test_the_lifecycle_allows_approved_back_to_awaiting_approval_only() -> None:
    from gateway.outbound.lifecycle import ALLOWED

    assert State.AWAITING_APPROVAL in ALLOWED[State.APPROVED]
    back = [s for s, nxt in ALLOWED.items() if State.AWAITING_APPROVAL in nxt]
    assert sorted(back) == sorted([State.QUARANTINED, State.APPROVED])
    with pytest.raises(StateError):
        from gateway.outbound.lifecycle import require_transition

        require_transition(State.SEALED, State.AWAITING_APPROVAL)


def _with_witnesses(rt: Runtime, count: int) -> Runtime:
    agreement = rt.agreements[AGREEMENT]
    flows = tuple(dataclasses.replace(f, witnesses=count) if f.id == FLOW else f
                  for f in agreement.flows)
    rt.agreements = {**rt.agreements, AGREEMENT: dataclasses.replace(agreement, flows=flows)}
    return rt


def _rejected_missing(rt: Runtime, demo: Demo, transfer_id: str) -> None:
    done = advance(rt, transfer_id)
    assert done.status is State.REJECTED
    assert [r["rule"] for r in done.reason_list()] == ["approval.missing"]
    assert rt.store.approvals_set_aside(transfer_id) == []
    assert not ledger(rt, transfer_id, "approval.voided")
    assert len(sealed_files(demo.inbox)) <= 1


def _sql(demo: Demo, query: str, *values: Any) -> None:
    with sqlite3.connect(Path(demo.state_db)) as db:
        db.execute(query, values)


def test_transfers_show_says_why_it_waits_again(rt: Runtime, demo: Demo) -> None:
    first, second = both_approved(rt, demo)
    advance(rt, first.id)
    advance(rt, second.id)
    shown = demo.cli("transfers", "show", second.id, check=True).stdout
    assert f"reason: {APPEARED}" in shown
    assert f"transfer {first.id} with the same bytes" in shown
    assert f"tachiai approve {second.id} --key KEY --duplicate-ok" in shown
    # The approval given before, set aside: who gave it, and why it no longer counts.
    aside = [line for line in shown.splitlines() if "set aside:" in line]
    assert len(aside) == 1 and "suzuki (SHA256:" in aside[0]
    assert f"({APPEARED}; the same bytes delivered as {first.id})" in aside[0]
    data = json.loads(demo.cli("transfers", "show", second.id, "--json", check=True).stdout)
    assert data["approvals"] == []
    assert [(a["witness"], a["rule"], a["duplicate_of"]) for a in data["approvals_set_aside"]] \
        == [("suzuki", APPEARED, first.id)]
    delivered = json.loads(demo.cli("transfers", "show", first.id, "--json", check=True).stdout)
    assert delivered["approvals_set_aside"] == []
    listed = demo.cli("transfers", "list", check=True).stdout
    assert APPEARED in listed
    japanese = demo.cli("transfers", "show", second.id, check=True,
                        env={"LANGUAGE": "ja", "LANG": "ja_JP.UTF-8"}).stdout
    assert "立会者が改めて判断します" in japanese and APPEARED in japanese
