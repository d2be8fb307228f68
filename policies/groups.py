"""Party groups keyed by 地方公共団体コード: one party of an agreement made of many bodies.

Seed 000 記1(3) sends the data 国保中央会 → 国保連合会 → 市町村, yet there are 47 federations (one
per prefecture, 都道府県) and some 1,700 municipalities (市町村), each its own body with its own
route, designated handlers (取扱者) and keys. A groups file (`ID.groups.toml`, beside the
agreement) says which party is such a group, how a row's code names its member (`key`: the
prefecture, i.e. the code's first two digits, or the full code) and who the members are; each
member becomes a party of its own (`nhi-federations-13`, `municipalities-131016`). Pure: it parses
a table it is given and answers "whose is this code?"; it never reads a file and never sees a row.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from policies import local_governments
from policies.checkdigits import is_valid_local_government_code
from policies.errors import FileProblem, PolicyFileError
from policies.wording import R_

__all__ = ["KEYS", "GroupRegistry", "Member", "PartyGroup", "normal_code"]

#: How a code names a member: its prefecture (the first two digits: 国保連合会 per 都道府県) or
#: the full code (a municipality, 市町村, and the wards counted as it).
KEYS = {"prefecture": "the code's first two digits (都道府県)", "municipality": "the full code"}


@dataclass(frozen=True)
class Member:
    """One body of a group: its own party id, its code, its name, and for a municipality the
    further codes counted as it (the wards, 行政区, of a designated city)."""

    party: str
    code: str
    name: str
    area_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PartyGroup:
    """A party of the agreement made of members keyed by local government code."""

    party: str
    key: str  # one of KEYS
    members: tuple[Member, ...]
    # The column whose text must agree with the code (e.g. 住居地 must start with the
    # prefecture's name), and what a disagreeing row gets: withheld, or the file refused.
    tie_column: str | None = None
    mismatch: str = "withhold"

    def party_of(self, code: str) -> Member | None:
        """The member whose rows carry this code, or None (fail closed: never a guess)."""
        code = normal_code(code)
        if not is_valid_local_government_code(code):
            return None
        return self._index.get(code[:2] if self.key == "prefecture" else code)

    def member(self, party: str) -> Member | None:
        return next((m for m in self.members if m.party == party), None)

    @cached_property
    def _index(self) -> dict[str, Member]:
        index: dict[str, Member] = {}
        for m in self.members:
            if self.key == "prefecture":
                index.setdefault(m.code[:2], m)
            else:
                for code in (m.code, *m.area_codes):
                    index.setdefault(code, m)
        return index


@dataclass(frozen=True)
class GroupRegistry:
    """Every party group of one agreement, by the group's party id."""

    agreement: str
    groups: Mapping[str, PartyGroup]
    source: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> GroupRegistry:
        """Parse a groups file's table.

        Raises:
            PolicyFileError: listing every problem found, each with its key and fix.
        """
        problems: list[FileProblem] = []

        def fail(key: str, message: str, fix: str) -> None:
            problems.append(FileProblem(source, key, message, fix))

        for key in data:
            if key not in {"agreement", "source", "groups"}:
                fail(
                    key,
                    R_("unknown key"),
                    R_("remove it or use one of: agreement, groups, source"),
                )
        agreement = data.get("agreement")
        if not isinstance(agreement, str) or not agreement:
            fail(
                "agreement",
                R_("missing"),
                R_('name the agreement id, e.g. agreement = "isa-nhi-…"'),
            )
            agreement = ""
        raw = data.get("groups")
        if not isinstance(raw, dict) or not raw:
            fail("groups", R_("missing"), R_("add one [groups.PARTY] table per party group"))
            raise PolicyFileError(problems)
        groups: dict[str, PartyGroup] = {}
        seen: dict[str, str] = {}
        for party, body in raw.items():
            group = _parse_group(str(party), body, fail, seen)
            if group is not None:
                groups[group.party] = group
        if problems:
            raise PolicyFileError(problems)
        return cls(str(agreement), groups, str(data.get("source", "")))


def normal_code(code: str) -> str:
    """A code as written in a cell, NFKC-normalised (full-width digits) and trimmed."""
    if code.isascii() and code.isdigit():
        return code
    return unicodedata.normalize("NFKC", code).strip()


# --- private helpers -----------------------------------------------------------------------------

_GROUP_KEYS = frozenset({"key", "members", "tie_column", "mismatch"})
_MEMBER_KEYS = frozenset({"code", "name", "party", "area_codes"})


def _parse_group(party: str, body: Any, fail: Any, seen: dict[str, str]) -> PartyGroup | None:
    where = f"groups.{party}"
    if not isinstance(body, dict):
        fail(where, R_("not a table"), R_("write [groups.{party}]", party=party))
        return None
    ok = True
    for key in body:
        if key not in _GROUP_KEYS:
            fail(f"{where}.{key}", R_("unknown key"), R_("use one of: {choices}",
                                                     choices=', '.join(sorted(_GROUP_KEYS))))
            ok = False
    key = body.get("key")
    if key not in KEYS:
        fail(f"{where}.key", R_("not a known key"), R_("write key = one of: {choices}",
                                                   choices=', '.join(KEYS)))
        return None
    mismatch = body.get("mismatch", "withhold")
    if mismatch not in ("withhold", "refuse"):
        fail(f"{where}.mismatch", R_("not withhold or refuse"),
             R_('write mismatch = "withhold" (the row is kept back) or "refuse" (the whole file)'))
        ok = False
    tie = body.get("tie_column")
    if tie is not None and (not isinstance(tie, str) or not tie.strip()):
        fail(f"{where}.tie_column", R_("not a column name"), R_('write tie_column = "住居地"'))
        ok = False
    raw = body.get("members")
    if not isinstance(raw, list) or not raw:
        fail(f"{where}.members", R_("missing"), R_("add one [[groups.{party}.members]] per member",
                                               party=party))
        return None
    members: list[Member] = []
    prefix = f"{where}.members"
    for i, item in enumerate(raw):
        member = _parse_member(party, str(key), item, f"{prefix}[{i}]", fail, seen)
        if member is not None:
            members.append(member)
        else:
            ok = False
    if not ok:
        return None
    return PartyGroup(party, str(key), tuple(members), tie, str(mismatch))


def _parse_member(
    group: str, key: str, body: Any, where: str, fail: Any, seen: dict[str, str]
) -> Member | None:
    if not isinstance(body, dict):
        fail(where, R_("not a table"), R_("write one table per member"))
        return None
    for k in body:
        if k not in _MEMBER_KEYS:
            fail(f"{where}.{k}", R_("unknown key"), R_("use one of: {choices}",
                                                   choices=', '.join(sorted(_MEMBER_KEYS))))
            return None
    code = body.get("code")
    if not isinstance(code, str) or not is_valid_local_government_code(code):
        fail(f"{where}.code", R_("not a 6-digit local government code with a valid check digit"),
             R_('write the code as a string, e.g. code = "130001" (東京都) or "131016" (千代田区)'))
        return None
    if local_governments.lookup(code) is None:
        fail(
            f"{where}.code",
            R_("code {code} is not in the 総務省 list of local governments "
               "({list_date})", code=code, list_date=local_governments.LIST_DATE),
            R_("correct the code from the list"),
        )
        return None
    if key == "prefecture" and code[2:5] != "000":
        fail(f"{where}.code", R_("a federation is keyed by its prefecture, not a municipality"),
             R_('write the prefecture\'s own code, e.g. code = "{code}000" with its check digit',
                code=code[:2]))
        return None
    if key == "municipality" and code[2:5] == "000":
        fail(f"{where}.code", R_("a prefecture's code in a group keyed by municipality"),
             R_("write the municipality's code, e.g. 131016 (千代田区)"))
        return None
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        fail(f"{where}.name", R_("missing"), R_('write the body\'s name, e.g. name = "千代田区"'))
        return None
    default = f"{group}-{code[:2] if key == 'prefecture' else code}"
    party = body.get("party", default)
    if not isinstance(party, str) or not party or not party.replace("-", "").isalnum() \
            or party != party.lower():
        fail(f"{where}.party", R_("not a valid party id"), R_('write party = "{default}"',
                                                          default=default))
        return None
    areas = body.get("area_codes", [])
    if not isinstance(areas, list) or not all(
        isinstance(a, str) and is_valid_local_government_code(a) for a in areas
    ) or (areas and key != "municipality"):
        fail(f"{where}.area_codes", R_("not a list of valid local government codes of wards"),
             R_('list the wards\' codes of a municipality, e.g. area_codes = ["141011"]'))
        return None
    city = [local_governments.city_of_ward(a) for a in areas]
    if any(c is None or c.code != code for c in city):
        fail(f"{where}.area_codes", R_("not wards (行政区) of this municipality"),
             R_("list only the wards of this designated city"))
        return None
    index = code[:2] if key == "prefecture" else code
    for k in (index, *areas):
        if f"{group}:{k}" in seen:
            fail(f"{where}.code", R_("code {code} is already a member of {group}",
                                     code=code, group=group),
                 R_("list each body once"))
            return None
        seen[f"{group}:{k}"] = party
    if f"party:{party}" in seen:
        fail(
            f"{where}.party",
            R_("party {party} is already used", party=party),
            R_("give each member its own id"),
        )
        return None
    seen[f"party:{party}"] = party
    return Member(party, code, str(name), tuple(str(a) for a in areas))
