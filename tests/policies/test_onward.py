"""Returning data to the party that provided it (a 疑義照会 naming the rows it asks about) is not
onward provision (再提供): `policies.onward.onward_refusal` with `provider=`.

Seed 003 (3): the bureau passes the data to nobody; sending it back to shinjuku, which provided
it, gives it to nobody new. A contractor is never a return, and an unknown holder stays refused.
"""

from __future__ import annotations

from policies.onward import onward_refusal
from policies.reasons import Reason
from tests.policies.bundled import agreement

SHINJUKU = agreement("shinjuku-immigration-arrears")  # tokyo-bureau: onward to nobody
NHI = agreement("isa-nhi-status-loss")


def _rule(reason: Reason | None) -> str | None:
    return reason.rule if reason is not None else None


def test_back_to_the_provider_is_allowed_where_onward_provision_is_not() -> None:
    assert _rule(onward_refusal(SHINJUKU, "tokyo-bureau", "shinjuku")) == "onward.forbidden"
    assert onward_refusal(SHINJUKU, "tokyo-bureau", "shinjuku", provider="shinjuku") is None
    # nhi-central may pass it on only to the federations, and back to isa, which provided it.
    assert _rule(onward_refusal(NHI, "nhi-central", "isa")) == "onward.forbidden"
    assert onward_refusal(NHI, "nhi-central", "isa", provider="isa") is None


def test_only_the_provider_itself_is_a_return() -> None:
    reason = onward_refusal(NHI, "nhi-central", "mhlw-insurance", provider="isa")
    assert _rule(reason) == "onward.forbidden"


def test_a_contractor_is_never_a_return() -> None:
    reason = onward_refusal(
        SHINJUKU, "tokyo-bureau", "shinjuku", provider="shinjuku", to_contractor=True
    )
    assert _rule(reason) == "onward.contractor"


def test_a_holder_the_agreement_does_not_know_is_refused_even_back_to_the_provider() -> None:
    reason = onward_refusal(SHINJUKU, "stranger", "shinjuku", provider="shinjuku")
    assert _rule(reason) == "onward.unknown-holder"
