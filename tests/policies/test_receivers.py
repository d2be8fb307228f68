"""Receiving verdicts: the designated receivers (受信担当) of a party, and who is refused."""

from __future__ import annotations

import datetime as dt

import pytest

from policies.handlers import Handler, Registry
from policies.receivers import designated_receivers, receiver_refusal

AGREEMENT = "a"
ON = dt.date(2026, 6, 1)


def _handler(
    name: str,
    party: str = "nhi-central",
    roles: tuple[str, ...] = ("receive",),
    agreements: tuple[str, ...] = (AGREEMENT,),
    start: dt.date = dt.date(2026, 1, 1),
    until: dt.date | None = None,
) -> Handler:
    return Handler(
        name=name,
        party=party,
        roles=frozenset(roles),
        public_key=f"ssh-ed25519 {name}",
        agreements=frozenset(agreements),
        designated_from=start,
        designated_until=until,
    )


TAKAHASHI = _handler("takahashi")
HAYASHI = _handler("hayashi", roles=("receive", "witness"))
WATANABE = _handler("watanabe", party="nhi-federation")  # a receiver, of another party
NAKAMURA = _handler("nakamura", roles=("witness",))  # our party, not a receiver
KATO = _handler("kato", agreements=("other",))  # a receiver under another agreement only
MORI = _handler("mori", start=dt.date(2026, 7, 1))  # designated from next month
ONO = _handler("ono", until=dt.date(2026, 5, 31))  # designation ended yesterday
REGISTRY = Registry((TAKAHASHI, WATANABE, NAKAMURA, HAYASHI, KATO, MORI, ONO))


@pytest.mark.parametrize(
    ("party", "agreement", "on", "names"),
    [
        ("nhi-central", AGREEMENT, ON, ["takahashi", "hayashi"]),  # registry order
        ("nhi-central", AGREEMENT, dt.date(2026, 7, 1), ["takahashi", "hayashi", "mori"]),
        ("nhi-central", AGREEMENT, dt.date(2026, 5, 31), ["takahashi", "hayashi", "ono"]),
        ("nhi-central", AGREEMENT, dt.date(2025, 12, 31), []),  # before any designation
        ("nhi-central", "other", ON, ["kato"]),
        ("nhi-federation", AGREEMENT, ON, ["watanabe"]),
        ("isa", AGREEMENT, ON, []),  # a party with no receivers: empty, callers fail closed
        ("nhi-central", "unknown", ON, []),
    ],
)
def test_designated_receivers(party: str, agreement: str, on: dt.date, names: list[str]) -> None:
    found = designated_receivers(REGISTRY, agreement, party, on)
    assert [h.name for h in found] == names


def test_no_registry_means_no_receivers() -> None:
    assert designated_receivers(Registry(()), AGREEMENT, "nhi-central", ON) == ()


@pytest.mark.parametrize(
    ("receiver", "agreement", "refused", "says"),
    [
        (TAKAHASHI, AGREEMENT, False, ""),
        (HAYASHI, AGREEMENT, False, ""),
        (None, AGREEMENT, True, "belongs to no registered handler"),
        (WATANABE, AGREEMENT, True, "belongs to party nhi-federation"),
        (NAKAMURA, AGREEMENT, True, "for a on 2026-06-01"),
        (KATO, AGREEMENT, True, "for a on 2026-06-01"),
        (MORI, AGREEMENT, True, "for a on 2026-06-01"),
        (ONO, AGREEMENT, True, "for a on 2026-06-01"),
        (TAKAHASHI, "other", True, "for other on"),
        (TAKAHASHI, None, True, "for this agreement"),  # no agreement: nobody, fail closed
    ],
    ids=["receiver", "receiver-and-witness", "unknown-key", "other-party", "not-a-receiver",
         "other-agreement", "not-yet", "ended", "wrong-agreement", "no-agreement"],
)
def test_receiver_refusal(
    receiver: Handler | None, agreement: str | None, refused: bool, says: str
) -> None:
    reason = receiver_refusal(receiver, "nhi-central", agreement, ON)
    if not refused:
        assert reason is None
        return
    assert reason is not None
    assert reason.rule == "receive.not-designated"
    assert says in reason.message
    # Every refusal says the same thing first, so a person (and a script) can find it.
    assert "not a designated receiving handler (受信担当) of nhi-central" in reason.message
    assert reason.term == (f"{agreement}/parties" if agreement else None)


def test_a_refusal_names_the_action_and_the_key_when_given() -> None:
    reason = receiver_refusal(NAKAMURA, "nhi-central", AGREEMENT, ON, action="certify",
                              key="SHA256:abc")
    assert reason is not None and reason.rule == "certify.not-designated"
    assert reason.message.startswith("the key SHA256:abc is not a designated receiving")


def test_the_verdicts_agree_a_listed_receiver_is_never_refused() -> None:
    for on in (dt.date(2025, 12, 31), ON, dt.date(2026, 7, 1)):
        listed = set(designated_receivers(REGISTRY, AGREEMENT, "nhi-central", on))
        for h in REGISTRY.handlers:
            assert (receiver_refusal(h, "nhi-central", AGREEMENT, on) is None) == (h in listed)
