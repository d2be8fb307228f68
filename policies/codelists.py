"""Closed code lists that column types are checked against: 国籍・地域 (nationality), 在留資格
(status of residence) with the longest 在留期間 (period of stay) of each. The list of
地方公共団体コード is policies.local_governments.

The lists are data shipped in `policies/reference/` (each file names its source and date) and the
ISO 3166-1 codes of pycountry; they are read once, on first use, from this package's own data
(as an import reads modules), never from another file. Pure lookups: never logs or echoes the
values it is asked about.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

import pycountry

__all__ = [
    "PERIOD_MAX",
    "StatusOfResidence",
    "is_nationality",
    "period_months_days",
    "status_of_residence",
]

# 施行規則 別表第二: no fixed period is longer than 5年; longer ones are 無期限.
PERIOD_MAX = "5年"


@dataclass(frozen=True)
class StatusOfResidence:
    """One 在留資格 of the closed list: its name in law and its longest period of stay."""

    name: str
    longest: str  # "5年", "4年3月", "90日" or "無期限"


def is_nationality(text: str) -> bool:
    """True if `text` (NFKC-normalised, trimmed) names a 国籍・地域: an ISO 3166-1 alpha-2 or
    alpha-3 code in capitals, a Japanese name of the shipped list, or 無国籍 / 朝鮮."""
    if len(text) in (2, 3) and text.isascii() and text.isupper():
        found = (
            pycountry.countries.get(alpha_2=text)
            if len(text) == 2
            else pycountry.countries.get(alpha_3=text)
        )
        return found is not None
    return text in _nationality_names()


def status_of_residence(text: str) -> StatusOfResidence | None:
    """The 在留資格 that `text` (NFKC-normalised, trimmed) names, or None when it names none.

    Accepts the names of 入管法 別表第一・第二, the forms written on a residence card (特定技能1号,
    高度専門職1号イ, 技能実習2号ロ, …) and 特定活動 followed by a bracketed designation such as
    特定活動(告示25号): the designation (指定書) is not a closed list.
    """
    statuses = _statuses()
    found = statuses.get(text)
    if found is not None:
        return found
    if _DESIGNATED_ACTIVITIES.fullmatch(text):
        return statuses.get("特定活動")
    return None


def period_months_days(period: str) -> tuple[int, int] | None:
    """A period of stay as (months, days), or None for 無期限; `period` must already match the
    `period-of-stay` type ("5年", "1年6月", "90日", "無期限").

    Raises:
        ValueError: `period` is not in that form (a programming error: check it first).
    """
    if period == "無期限":
        return None
    match = _PERIOD.fullmatch(period)
    if match is None:
        raise ValueError("not a period of stay")
    years, months, days = (int(g) if g else 0 for g in match.groups())
    return (years * 12 + months, days)


# --- private helpers -----------------------------------------------------------------------------

_PERIOD = re.compile(r"(?:([0-9]+)年)?(?:([0-9]+)月)?(?:([0-9]+)日)?")
# 特定活動 with the designation in brackets (NFKC folds full-width brackets): 特定活動(告示46号).
_DESIGNATED_ACTIVITIES = re.compile(r"特定活動\([^()\s]{1,30}\)")


def _reference(name: str) -> dict[str, object]:
    text = resources.files("policies").joinpath("reference", name).read_text(encoding="utf-8")
    return tomllib.loads(text)


@cache
def _nationality_names() -> frozenset[str]:
    data = _reference("nationalities.toml")
    names = data["names"]
    others = data["others"]
    assert isinstance(names, dict) and isinstance(others, list)
    out = {str(n) for entry in names.values() for n in entry}
    out.update(str(n) for n in others)
    return frozenset(out)


@cache
def _statuses() -> dict[str, StatusOfResidence]:
    data = _reference("status_of_residence.toml")
    entries = data["statuses"]
    assert isinstance(entries, list)
    out: dict[str, StatusOfResidence] = {}
    for entry in entries:
        status = StatusOfResidence(str(entry["name"]), str(entry["max"]))
        for name in (status.name, *entry["forms"]):
            out[str(name)] = status
    return out
