"""Corrections (訂正): `policies.admission.check_correction`, one row per refusal and the cases
it allows. Seed 003 (6) agrees to corrections; the NHI agreement provides for none.
"""

from __future__ import annotations

import dataclasses

import pytest

from policies.admission import check_correction
from policies.agreement import Agreement, Flow
from tests.policies.bundled import agreement

NHI = agreement("isa-nhi-status-loss")  # corrections = false
SHINJUKU = agreement("shinjuku-immigration-arrears")  # corrections = true
PROVISION = SHINJUKU.flow("provision")  # shinjuku → tokyo-bureau
# A correction flow to the same party as the provision it corrects (the seed names none).
CORRECTION = dataclasses.replace(SHINJUKU.flow("resolved"), id="fix", kind="correction")
OURS = "t-000000000001"


@pytest.mark.parametrize(
    ("agreement_", "flow", "corrected", "ref", "rule", "term"),
    [
        pytest.param(
            NHI,
            NHI.flow("monthly"),
            NHI.flow("monthly"),
            OURS,
            "correction.not-agreed",
            "isa-nhi-status-loss/corrections",
            id="the agreement provides for no corrections",
        ),
        pytest.param(
            SHINJUKU,
            PROVISION,
            PROVISION,
            "h-000000000001",
            "correction.not-ours",
            "shinjuku-immigration-arrears/corrections",
            id="a holding (received data) is not ours to correct",
        ),
        pytest.param(
            SHINJUKU,
            SHINJUKU.flow("inquiry"),
            PROVISION,
            OURS,
            "correction.flow",
            "shinjuku-immigration-arrears/flows.inquiry",
            id="to another party than the corrected provision",
        ),
        pytest.param(
            SHINJUKU,
            SHINJUKU.flow("answer"),
            PROVISION,
            OURS,
            "correction.flow",
            "shinjuku-immigration-arrears/flows.answer",
            id="same party, but on another flow that is no correction flow",
        ),
    ],
)
def test_a_correction_the_agreement_does_not_provide_for_is_refused(
    agreement_: Agreement, flow: Flow, corrected: Flow, ref: str, rule: str, term: str
) -> None:
    reason = check_correction(agreement_, flow, corrected, ref)
    assert reason is not None
    assert (reason.rule, reason.term) == (rule, term)


@pytest.mark.parametrize(
    "flow",
    [
        pytest.param(PROVISION, id="on the flow of the corrected provision"),
        pytest.param(CORRECTION, id="on a correction flow to the same party"),
    ],
)
def test_a_correction_of_our_delivered_transfer_is_allowed(flow: Flow) -> None:
    assert check_correction(SHINJUKU, flow, PROVISION, OURS) is None
