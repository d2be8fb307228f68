"""An agreement's `witness_keys` term is enforced where approvals count: at `approve`, again
before sealing (`authorize`), and by a receiving gateway reading the manifest.

A key file cannot show user verification (PIN), so under `require_user_verification` an
otherwise valid witness signature made with `ssh-keygen -Y sign` counts for nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gateway.config.settings import load_settings
from gateway.errors import CheckFailed
from gateway.outbound import approvals
from gateway.runtime import Runtime
from policies.terms import WitnessKeys
from tests.conftest import AGREEMENT, GOOD_ROWS, Demo, csv_bytes

pytestmark = pytest.mark.slow


def _runtime(demo: Demo, *, require_uv: bool) -> Any:
    rt = Runtime.open(load_settings(demo.config))
    agreement = rt.agreements[AGREEMENT]
    strict = dataclasses.replace(
        agreement, witness_keys=WitnessKeys(require_user_verification=require_uv)
    )
    rt.agreements = {**rt.agreements, AGREEMENT: strict}
    return rt


def _waiting(demo: Demo) -> str:
    demo.start()
    demo.drop("a.csv", csv_bytes(GOOD_ROWS))
    (transfer,) = demo.wait_state("awaiting_approval")
    demo.stop()  # the rest runs in this process, against the same state
    return str(transfer["id"])


def test_a_key_file_signature_counts_for_nothing_when_user_verification_is_required(
    demo: Demo,
) -> None:
    transfer_id = _waiting(demo)
    rt = _runtime(demo, require_uv=True)
    message = approvals.statement(rt, rt.store.get(transfer_id))
    signature = demo.sign_with_ssh_keygen(message, "suzuki").read_text()
    with pytest.raises(CheckFailed, match="user verification"):
        approvals.approve(rt, transfer_id, signature)
    assert rt.store.approvals(transfer_id) == []
    kinds = [e.kind for e in rt.ledger.events() if e.subject == transfer_id]
    assert "approval.refused" in kinds and "approval.accepted" not in kinds


def test_an_approval_counted_before_the_term_is_not_enough_to_seal(demo: Demo) -> None:
    transfer_id = _waiting(demo)
    rt = _runtime(demo, require_uv=False)
    t = rt.store.get(transfer_id)
    signature = demo.sign_with_ssh_keygen(approvals.statement(rt, t), "suzuki").read_text()
    assert approvals.approve(rt, transfer_id, signature).approved
    t = rt.store.get(transfer_id)
    assert approvals.authorize(rt, t, t.sha256 or "", t.size or 0) is None
    strict = _runtime(demo, require_uv=True)
    reason = approvals.authorize(strict, t, t.sha256 or "", t.size or 0)
    assert reason is not None and reason.rule == "approval.missing"
