"""The delegation registry (委任状): who is covered from when, and broken registry files."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from policies.delegations import Delegation, DelegationRegistry
from policies.errors import PolicyFileError
from tests.policies.bundled import table

REGISTRY = DelegationRegistry(
    "demo",
    (
        Delegation("131041", "新宿区", dt.date(2023, 4, 3)),
        Delegation("011002", "札幌市", dt.date(2024, 4, 1), withdrawn=dt.date(2025, 4, 1)),
        Delegation("141003", "横浜市", dt.date(2023, 6, 1), area_codes=("141011",)),
    ),
)


@pytest.mark.parametrize(
    ("code", "on", "covered"),
    [
        ("131041", dt.date(2023, 4, 2), False),  # the day before filing
        ("131041", dt.date(2023, 4, 3), True),  # from the day it filed
        ("131041", dt.date(2030, 1, 1), True),
        ("１３１０４１", dt.date(2024, 1, 1), True),  # full-width digits compare after NFKC
        (" 131041 ", dt.date(2024, 1, 1), True),
        ("011002", dt.date(2025, 3, 31), True),
        ("011002", dt.date(2025, 4, 1), False),  # withdrawn: the first day no longer covered
        ("141011", dt.date(2023, 6, 1), True),  # a ward of a designated city
        ("141011", dt.date(2023, 5, 31), False),
        ("131016", dt.date(2024, 1, 1), False),  # never filed
        ("", dt.date(2024, 1, 1), False),
    ],
)
def test_coverage(code: str, on: dt.date, covered: bool) -> None:
    assert REGISTRY.covers(code, on) is covered


def test_the_bundled_sample_registry_parses() -> None:
    registry = DelegationRegistry.from_mapping(table("isa-nhi-status-loss.delegations.toml"), "x")
    assert registry.agreement == "isa-nhi-status-loss"
    assert {e.code for e in registry.entries} >= {"131041", "141003"}
    assert registry.as_of is not None


def _broken(mutate: Any) -> list[str]:
    data = table("isa-nhi-status-loss.delegations.toml")
    mutate(data)
    with pytest.raises(PolicyFileError) as caught:
        DelegationRegistry.from_mapping(data, "reg.toml")
    for problem in caught.value.problems:
        assert problem.fix and problem.source == "reg.toml"
    return [p.key for p in caught.value.problems]


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda d: d["delegations"][0].update(code="131042"), "delegations[0].code"),  # check digit
        (lambda d: d["delegations"][0].update(code="130001"), "delegations[0].code"),  # 東京都
        (lambda d: d["delegations"][0].update(code=131041), "delegations[0].code"),  # not a string
        (lambda d: d["delegations"][0].pop("filed"), "delegations[0].filed"),
        (lambda d: d["delegations"][0].update(filed="2023-04-03"), "delegations[0].filed"),
        (
            lambda d: d["delegations"][0].update(withdrawn=dt.date(2020, 1, 1)),
            "delegations[0].withdrawn",
        ),
        (lambda d: d["delegations"][0].update(name=""), "delegations[0].name"),
        (lambda d: d["delegations"][0].update(area_codes=["141012"]), "delegations[0].area_codes"),
        (lambda d: d["delegations"][0].update(note="x"), "delegations[0].note"),
        (lambda d: d["delegations"].append(dict(d["delegations"][0])), "delegations[4].code"),
        # an area that is a municipality (新宿区), or a ward of another city (札幌市中央区)
        (lambda d: d["delegations"][1].update(area_codes=["131041"]), "delegations[1].area_codes"),
        (lambda d: d["delegations"][1].update(area_codes=["011011"]), "delegations[1].area_codes"),
        (lambda d: d.pop("agreement"), "agreement"),
        (lambda d: d.update(as_of="yesterday"), "as_of"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d.pop("delegations"), "delegations"),
    ],
)
def test_broken_registries_name_the_key(mutate: Any, key: str) -> None:
    assert key in _broken(mutate)
