"""Test helpers: the bundled agreement files as tables and as values (read by the tests, since
`policies` itself never reads files)."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import policies
from policies.agreement import Agreement
from policies.agreement_file import parse_agreement
from policies.delegations import DelegationRegistry
from policies.groups import GroupRegistry

AGREEMENTS_DIR = Path(policies.__file__).parent / "agreements"
BUNDLED_IDS = ("isa-nhi-status-loss", "isa-mhlw-specified-skilled", "shinjuku-immigration-arrears")

_CACHE: dict[str, dict[str, Any]] = {}


def table(name: str) -> dict[str, Any]:
    """A fresh deep copy of a bundled file's TOML table (tests may mutate it)."""
    if name not in _CACHE:
        _CACHE[name] = tomllib.loads((AGREEMENTS_DIR / name).read_text(encoding="utf-8"))
    return copy.deepcopy(_CACHE[name])


def agreement(agreement_id: str, *, delegations: bool = True, groups: bool = True) -> Agreement:
    """A bundled agreement, with its delegation registry attached when it has a scope and its
    party groups when it has a groups file."""
    parsed = parse_agreement(table(f"{agreement_id}.toml"), f"{agreement_id}.toml")
    if delegations and parsed.scope is not None:
        registry = DelegationRegistry.from_mapping(
            table(parsed.scope.registry), parsed.scope.registry
        )
        parsed = parsed.with_delegations(registry)
    name = f"{agreement_id}.groups.toml"
    if groups and (AGREEMENTS_DIR / name).exists():
        parsed = parsed.with_groups(GroupRegistry.from_mapping(table(name), name))
    return parsed
