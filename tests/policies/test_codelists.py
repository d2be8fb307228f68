"""The shipped closed lists (policies/reference/) are well-formed and name their source."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pycountry

import policies
from policies.codelists import is_nationality, period_months_days, status_of_residence
from policies.values import check_value

REFERENCE = Path(policies.__file__).parent / "reference"


def load(name: str) -> dict[str, object]:
    return tomllib.loads((REFERENCE / name).read_text(encoding="utf-8"))


def test_every_nationality_entry_is_an_iso_country_and_every_country_has_a_name() -> None:
    data = load("nationalities.toml")
    assert data["source"] and data["as_of"]
    names = data["names"]
    assert isinstance(names, dict)
    assert set(names) == {c.alpha_2 for c in pycountry.countries}
    for code, entry in names.items():
        assert entry and all(is_nationality(n) for n in entry), code
        country = pycountry.countries.get(alpha_2=code)
        assert is_nationality(code) and is_nationality(country.alpha_3)


def test_names_are_unique_to_one_country() -> None:
    names = load("nationalities.toml")["names"]
    assert isinstance(names, dict)
    seen: dict[str, str] = {}
    for code, entry in names.items():
        for name in entry:
            assert seen.setdefault(name, code) == code, name


def test_every_status_has_a_period_that_the_period_type_accepts() -> None:
    data = load("status_of_residence.toml")
    assert data["source"] and data["as_of"]
    statuses = data["statuses"]
    assert isinstance(statuses, list) and len(statuses) >= 29
    for entry in statuses:
        assert check_value("period-of-stay", entry["max"]) is None, entry["name"]
        period_months_days(entry["max"])
        for name in (entry["name"], *entry["forms"]):
            found = status_of_residence(name)
            assert found is not None and found.longest == entry["max"]
