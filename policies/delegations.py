"""The delegation registry (委任状の提出状況): which municipalities filed a 委任状, and from when.

Seed 000 記1(3): provision covers only municipalities (市町村, 特別区を含む) that filed a 委任状
with their 国保連合会, including those that file after the agreement was signed. This module
parses the registry's table and answers "is this code covered on that day?"; it never reads a
file and never sees a row, only a local government code.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from policies import local_governments
from policies.errors import FileProblem, PolicyFileError
from policies.wording import R_

__all__ = ["Delegation", "DelegationRegistry"]


@dataclass(frozen=True)
class Delegation:
    """One municipality's 委任状: its code, name, the day it was filed and, if withdrawn, the
    first day it no longer applies. `area_codes` are further codes counted as this municipality,
    e.g. the wards (行政区) of a designated city (政令指定都市), which carry their own codes."""

    code: str
    name: str
    filed: dt.date
    withdrawn: dt.date | None = None
    area_codes: tuple[str, ...] = ()

    def in_effect(self, on: dt.date) -> bool:
        if on < self.filed:
            return False
        return self.withdrawn is None or on < self.withdrawn


@dataclass(frozen=True)
class DelegationRegistry:
    """Every 委任状 known for one agreement."""

    agreement: str
    entries: tuple[Delegation, ...]
    source: str = ""
    as_of: dt.date | None = None  # the day the list was last brought up to date

    def entry_for(self, code: str) -> Delegation | None:
        """The delegation covering a code (NFKC, trimmed), whether or not in effect."""
        return self._by_code.get(code if code.isascii() and code.isdigit() else _normal(code))

    @cached_property
    def _by_code(self) -> dict[str, Delegation]:
        # Built once: a file is checked row by row against some 1,700 municipalities.
        index: dict[str, Delegation] = {}
        for entry in self.entries:
            for code in (entry.code, *entry.area_codes):
                index.setdefault(code, entry)
        return index

    def covers(self, code: str, on: dt.date) -> bool:
        """Whether rows for this local government code may be provided on that day."""
        entry = self.entry_for(code)
        return entry is not None and entry.in_effect(on)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> DelegationRegistry:
        """Parse a delegation registry file's table.

        Raises:
            PolicyFileError: listing every problem found, each with its key and fix.
        """
        problems: list[FileProblem] = []

        def fail(key: str, message: str, fix: str) -> None:
            problems.append(FileProblem(source, key, message, fix))

        known = {"agreement", "source", "as_of", "delegations"}
        for key in data:
            if key not in known:
                fail(key, R_("unknown key"), R_("remove it or use one of: {choices}",
                                            choices=', '.join(sorted(known))))
        agreement = data.get("agreement")
        if not isinstance(agreement, str) or not agreement:
            fail(
                "agreement",
                R_("missing"),
                R_('name the agreement id, e.g. agreement = "isa-nhi-…"'),
            )
            agreement = ""
        as_of = data.get("as_of")
        if as_of is not None and not _is_date(as_of):
            fail("as_of", R_("not a date"), R_("write as_of = 2026-10-01"))
            as_of = None
        raw = data.get("delegations")
        if not isinstance(raw, list):
            fail("delegations", R_("missing"), R_("add one [[delegations]] table per municipality"))
            raise PolicyFileError(problems)
        entries: list[tuple[int, Delegation]] = []
        for i, body in enumerate(raw):
            entry = _parse_entry(body, f"delegations[{i}]", fail)
            if entry is not None:
                entries.append((i, entry))
        _check_unique(entries, fail)
        if problems:
            raise PolicyFileError(problems)
        return cls(agreement, tuple(e for _, e in entries), str(data.get("source", "")), as_of)


# --- private helpers -----------------------------------------------------------------------------


def _normal(code: str) -> str:
    return unicodedata.normalize("NFKC", code).strip()


def _is_date(value: Any) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def _is_municipality(code: str) -> bool:
    # A municipality of the 総務省 list; a prefecture (130001 東京都) files no 委任状 (seed 000).
    found = local_governments.lookup(code)
    return found is not None and not found.is_prefecture


def _is_ward_of(area: str, code: object) -> bool:
    city = local_governments.city_of_ward(area)
    return city is not None and city.code == code


def _parse_entry(body: Any, where: str, fail: Any) -> Delegation | None:
    if not isinstance(body, dict):
        fail(where, R_("not a table"), R_("write [[delegations]]"))
        return None
    ok = True
    for key in body:
        if key not in {"code", "name", "filed", "withdrawn", "area_codes"}:
            fail(
                f"{where}.{key}",
                R_("unknown key"),
                R_("use code, name, filed, withdrawn and area_codes only"),
            )
            ok = False
    code = body.get("code")
    if not isinstance(code, str) or not _is_municipality(code):
        fail(
            f"{where}.code",
            R_("not the 6-digit local government code of a municipality of the 総務省 list "
               "(policies/reference/local_governments.tsv)"),
            R_('write the code as a string, e.g. code = "131041" (新宿区)'),
        )
        ok = False
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        fail(
            f"{where}.name",
            R_("missing"),
            R_('write the municipality\'s name, e.g. name = "新宿区"'),
        )
        ok = False
    filed = body.get("filed")
    if not _is_date(filed):
        fail(
            f"{where}.filed",
            R_("missing or not a date"),
            R_("write the day the 委任状 was filed, e.g. filed = 2023-04-01"),
        )
        ok = False
    withdrawn = body.get("withdrawn")
    if withdrawn is not None and (
        not _is_date(withdrawn) or (_is_date(filed) and withdrawn <= filed)
    ):
        fail(
            f"{where}.withdrawn",
            R_("not a date after the filing date"),
            R_("write the first day the 委任状 no longer applies, after filed"),
        )
        ok = False
    areas = body.get("area_codes", [])
    if not isinstance(areas, list) or not all(
        isinstance(a, str) and _is_ward_of(a, code) for a in areas
    ):
        fail(
            f"{where}.area_codes",
            R_("not a list of codes of this designated city's wards (行政区)"),
            R_('list the wards\' codes, e.g. area_codes = ["141011"]'),
        )
        ok = False
    if not ok or not isinstance(filed, dt.date):
        return None
    return Delegation(str(code), str(name), filed, withdrawn, tuple(str(a) for a in areas))


def _check_unique(entries: list[tuple[int, Delegation]], fail: Any) -> None:
    seen: dict[str, int] = {}
    for i, entry in entries:
        for code in (entry.code, *entry.area_codes):
            if code in seen:
                fail(
                    f"delegations[{i}].code",
                    R_("code {code} is already listed", code=code),
                    R_("list each municipality once; record a re-filing by removing `withdrawn`"),
                )
            seen[code] = i
