"""The 総務省 list of local governments (全国地方公共団体コード): which 6-digit codes name a
prefecture or a municipality that exists, and what it is called.

The list is data shipped in `policies/reference/local_governments.tsv` (its header names the
source and the date of the state it shows). The wards (行政区) of the designated cities are not
local governments and not in that list; `policies/reference/designated_city_wards.toml` gives each
city's block of ward numbers, and `city_of_ward` recognises a ward's code by it. Both are read
once, on first use, from this package's own data. Pure lookups: nothing here logs or echoes the
codes it is asked about.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache

from policies.checkdigits import is_valid_local_government_code

__all__ = [
    "LIST_DATE",
    "LocalGovernment",
    "city_of_ward",
    "lookup",
    "municipalities",
    "prefectures",
]

# The state of the list: the last change to the municipalities it includes (那珂川市, 2018-10-01).
LIST_DATE = "2018-10-01"


@dataclass(frozen=True)
class LocalGovernment:
    """One entry of the list: a prefecture (`name` empty) or a municipality."""

    code: str  # 6 digits, the last the check digit
    prefecture: str  # 都道府県名, e.g. 東京都
    name: str  # 市区町村名, e.g. 千代田区; "" for the prefecture itself
    kana: str  # the reading of `name` (of the prefecture when `name` is empty), full-width

    @property
    def prefecture_code(self) -> str:
        """The first two digits: the prefecture the code belongs to (01–47)."""
        return self.code[:2]

    @property
    def is_prefecture(self) -> bool:
        """True for a prefecture's own code (NN000C), False for a municipality."""
        return not self.name

    @property
    def full_name(self) -> str:
        """The prefecture and the municipality together, e.g. 東京都千代田区."""
        return self.prefecture + self.name


def lookup(code: str) -> LocalGovernment | None:
    """The local government that the 6-digit `code` names, or None when the list has no such
    code (a mistyped digit, a retired or invented code, or not six digits at all)."""
    return _by_code().get(code)


def city_of_ward(code: str) -> LocalGovernment | None:
    """The designated city (政令指定都市) whose ward (行政区) the 6-digit `code` names (a valid
    check digit and a body number inside the city's block of ward numbers), or None."""
    if not is_valid_local_government_code(code):
        return None
    body = code[:5]
    for city, (first, last) in _ward_blocks().items():
        if first <= body <= last:
            return lookup(city)
    return None


def prefectures() -> tuple[LocalGovernment, ...]:
    """The 47 prefectures, in code order (01 北海道 … 47 沖縄県)."""
    return tuple(g for g in _by_code().values() if g.is_prefecture)


def municipalities(prefecture_code: str) -> tuple[LocalGovernment, ...]:
    """The municipalities of one prefecture (its two-digit code), in code order; empty for a
    code that is no prefecture."""
    return tuple(
        g
        for g in _by_code().values()
        if not g.is_prefecture and g.prefecture_code == prefecture_code
    )


# --- private helpers -----------------------------------------------------------------------------


def _reference(name: str) -> str:
    from importlib import resources  # here: a command that reads no code loads no resources

    return resources.files("policies").joinpath("reference", name).read_text(encoding="utf-8")


@cache
def _ward_blocks() -> dict[str, tuple[str, str]]:
    blocks = tomllib.loads(_reference("designated_city_wards.toml"))["blocks"]
    return {str(city): (str(span[0]), str(span[1])) for city, span in blocks.items()}


@cache
def _by_code() -> dict[str, LocalGovernment]:
    text = _reference("local_governments.tsv")
    out: dict[str, LocalGovernment] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        code, prefecture, name, kana = line.split("\t")
        out[code] = LocalGovernment(code, prefecture, name, kana)
    return out
