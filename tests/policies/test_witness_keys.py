"""The [witness_keys] term: what an approval signature must prove (security key flags)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from policies.agreement import Agreement
from policies.agreement_file import parse_agreement
from policies.approvals import USER_PRESENCE, USER_VERIFICATION, key_proof_refusal
from policies.errors import PolicyFileError
from policies.handlers import Registry
from policies.terms import WitnessKeys
from tests.policies.bundled import agreement, table

NHI = "isa-nhi-status-loss"
PLAIN = agreement(NHI)
STRICT = dataclasses.replace(PLAIN, witness_keys=WitnessKeys(require_user_verification=True))
SK_LINE = (
    "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIJsaDYXQYruc6bilCYDIK4Y"
    "SOeG+zmrRO2M9t03//7LHAAAABHNzaDo="
)


@pytest.mark.parametrize(
    ("policy", "flags", "rule"),
    [
        (PLAIN, None, None),  # a key file: nothing to prove beyond the key
        (PLAIN, USER_PRESENCE, None),
        (PLAIN, 0x00, "approval.user-presence"),
        (PLAIN, USER_VERIFICATION, "approval.user-presence"),  # a PIN without a touch
        (STRICT, None, "approval.user-verification"),  # a key file cannot show a PIN
        (STRICT, USER_PRESENCE, "approval.user-verification"),
        (STRICT, USER_PRESENCE | USER_VERIFICATION, None),
        (STRICT, 0x00, "approval.user-presence"),
    ],
)
def test_key_proof_decision(policy: Agreement, flags: int | None, rule: str | None) -> None:
    reason = key_proof_refusal(policy, flags)
    assert (reason.rule if reason else None) == rule
    if reason is not None:
        assert reason.term == f"{NHI}/witness_keys" and reason.message


def test_the_term_parses_and_defaults_to_no_verification() -> None:
    assert PLAIN.witness_keys == WitnessKeys(require_user_verification=False)
    data = table(f"{NHI}.toml")
    data["witness_keys"] = {"require_user_presence": True, "require_user_verification": True}
    assert parse_agreement(data, NHI).witness_keys.require_user_verification


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"require_user_presence": False}, "witness_keys.require_user_presence"),
        ({"require_user_verification": "yes"}, "witness_keys.require_user_verification"),
        ({"require_pin": True}, "witness_keys.require_pin"),
        ("strict", "witness_keys"),
    ],
)
def test_a_broken_term_names_the_key(body: object, key: str) -> None:
    data = table(f"{NHI}.toml")
    data["witness_keys"] = body
    with pytest.raises(PolicyFileError) as caught:
        parse_agreement(data, NHI)
    assert key in [p.key for p in caught.value.problems]


def test_the_registry_accepts_a_security_key() -> None:
    registry = Registry.from_mapping(
        {
            "handlers": [
                {
                    "name": "suzuki",
                    "party": "isa",
                    "roles": ["witness"],
                    "public_key": SK_LINE + " suzuki@token",
                    "agreements": [NHI],
                    "designated_from": dt.date(2026, 4, 1),
                }
            ]
        },
        "handlers.toml",
    )
    found = registry.by_key(SK_LINE)
    assert found is not None and found.name == "suzuki" and found.public_key == SK_LINE
