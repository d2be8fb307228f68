"""Loads agreement (確認書), delegation-registry (委任状) and handler-registry files from disk.

Bundled agreements are found by id in `policies/agreements/`; others by path. A delegation
registry named by an agreement's [scope] is read from beside it and attached. Every problem in
every file is reported at once, with file, line, key and fix: as a ConfigError (exit 78) when
the daemon loads its configuration, as CheckFailed (exit 1) from `tachiai agreements check`.
Over 400 lines for one reason: locating each problem's file and line is shared by the three
file kinds, and reads best beside them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import policies
from gateway.config import deliverability
from gateway.config.settings import Settings
from gateway.errors import CheckFailed, ConfigError
from gateway.i18n import N_
from policies.agreement import Agreement
from policies.agreement_file import parse_agreement
from policies.delegations import DelegationRegistry
from policies.designations import check_designations
from policies.errors import FileProblem, PolicyFileError
from policies.groups import GroupRegistry
from policies.handlers import Registry

BUNDLED_DIR = Path(policies.__file__).parent / "agreements"
DELEGATIONS_SUFFIX = ".delegations.toml"
GROUPS_SUFFIX = ".groups.toml"  # party groups keyed by 地方公共団体コード (policies.groups)


@dataclass
class CheckReport:
    """What `agreements check` found: problems (errors), warnings and what was valid."""

    problems: list[FileProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    valid: list[str] = field(default_factory=list)
    agreements: dict[str, Agreement] = field(default_factory=dict)


def bundled_agreement_paths() -> list[Path]:
    """The bundled agreement files (not their delegation registries or groups files)."""
    return sorted(
        p for p in BUNDLED_DIR.glob("*.toml")
        if not p.name.endswith((DELEGATIONS_SUFFIX, GROUPS_SUFFIX))
    )


def agreement_path(ref: str, base: Path) -> Path:
    """A bundled agreement's file by id, or a path relative to `base`."""
    if ref.endswith(".toml") or "/" in ref:
        return (base / ref).resolve()
    return BUNDLED_DIR / f"{ref}.toml"


def load_agreements(refs: Sequence[str], base: Path) -> dict[str, Agreement]:
    """Every referenced agreement, keyed by id, with its delegation registry attached.

    Raises:
        ConfigError: listing every problem of every file, with lines.
    """
    report = CheckReport()
    for ref in refs:
        _load_agreement(agreement_path(ref, base), report)
    if report.problems:
        raise problems_error(report.problems, ConfigError)
    return report.agreements


def load_registry(path: Path) -> Registry:
    """Raises: ConfigError listing every problem in the registry file, with lines."""
    try:
        data, _text = _read_toml(path)
        return Registry.from_mapping(data, str(path))
    except PolicyFileError as exc:
        raise problems_error(_with_lines(exc.problems, path), ConfigError) from exc


def check_paths(paths: Sequence[Path], on: dt.date) -> CheckReport:
    """Check the named files, each by its kind: agreement, delegation or handler registry.

    A handler registry is cross-checked against the agreements among the paths.
    """
    report = CheckReport()
    registries: list[Path] = []
    for path in paths:
        kind = _kind_of(path, report)
        if kind == "agreement":
            _load_agreement(path, report)
        elif kind == "delegations":
            _load_delegations_alone(path, report)
        elif kind == "groups":
            _load_groups(path, report)
        elif kind == "handlers":
            registries.append(path)
    for path in registries:
        _check_handlers(path, report, on, None)
    return report


def check_configured(settings: Settings, on: dt.date) -> CheckReport:
    """Check the configured agreements (with their delegation registries) and the handler
    registry, cross-checked for this gateway's party; then, when those are valid, that every
    flow can be delivered on paper (gateway.config.deliverability)."""
    report = CheckReport()
    for ref in settings.agreements:
        _load_agreement(agreement_path(ref, settings.config_path.parent), report)
    _check_handlers(settings.registry_path, report, on, settings.party)
    if report.problems:
        return report
    try:
        registry = load_registry(settings.registry_path)
    except ConfigError:  # already reported by _check_handlers
        return report
    found = deliverability.check(settings, report.agreements, registry, on)
    try:
        config_text = settings.config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        config_text = ""
    for finding in found.problems:
        source = finding.source or settings.config_path
        line = locate(config_text, finding.key) if finding.source is None else None
        report.problems.append(
            FileProblem(str(source), finding.key, finding.problem, finding.fix, line)
        )
    report.warnings.extend(found.warnings)
    if not found.problems and settings.recipients:
        report.valid.append(
            N_("routes: every flow of {party} can be delivered ({recipients})").format(
                party=settings.party, recipients=', '.join(sorted(settings.recipients)))
        )
    return report


def locate(text: str, key: str) -> int | None:
    """The line of `key` (e.g. "flows[0].schedule.due") in a TOML file's text, or of the nearest
    enclosing table or array element that exists; 1 for a missing top-level key.

    tomllib gives no positions, so this is a documented heuristic over the text: it follows
    [table] and [[array]] headers (counting array elements), `key = value` lines, the keys of
    one-line inline tables, and inline tables on their own lines inside multi-line arrays
    (columns = [ {…}, {…} ]). Elements of arrays of tables can also be named by their id, name or
    code ("handlers.sato" for the [[handlers]] whose name = "sato"). None when text is empty.
    """
    if not text:
        return None
    lines, aliases = _key_lines(text)
    for alias, target in sorted(aliases.items(), key=lambda kv: -len(kv[0])):
        if key == alias or key.startswith(alias + ".") or key.startswith(alias + "["):
            key = target + key[len(alias) :]
            break
    candidate = key
    while candidate:
        if candidate in lines:
            return lines[candidate]
        candidate = _parent_key(candidate)
    return 1


def problems_error(
    problems: Sequence[FileProblem], cls: type[ConfigError] | type[CheckFailed]
) -> ConfigError | CheckFailed:
    """One error listing every problem: the same words for the daemon and for the check."""
    lines = "\n".join(f"  {p}" for p in problems)
    return cls(
        N_("{count} problem(s) in agreement or registry files:\n{lines}").format(
            count=len(problems), lines=lines),
        hint=N_("fix each line named above, then run `tachiai agreements check` again"),
    )


# --- private helpers -----------------------------------------------------------------------------

_TOML_LINE = re.compile(r"at line (\d+)")


def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """Raises: PolicyFileError when the file is missing, unreadable or not TOML."""
    try:
        text = path.read_text(encoding="utf-8")
        return tomllib.loads(text), text
    except FileNotFoundError:
        raise PolicyFileError(
            [FileProblem(str(path), "(file)", N_("no such file"), N_("check the path or the "
                                                                 "agreement id"))]
        ) from None
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        raise PolicyFileError(
            [
                FileProblem(
                    str(path),
                    "(syntax)",
                    str(exc),
                    N_("fix the TOML syntax at that line"),
                    int(found.group(1)) if found else None,
                )
            ]
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyFileError(
            [FileProblem(str(path), "(file)", str(exc), N_("make the file readable UTF-8 text"))]
        ) from exc


def _with_lines(problems: Sequence[FileProblem], path: Path) -> list[FileProblem]:
    """The problems with the line of each key filled in, read from the file's text."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return list(problems)
    out = []
    for p in problems:
        if p.line is None and p.source == str(path) and not p.key.startswith("("):
            p = dataclasses.replace(p, line=locate(text, p.key))
        out.append(p)
    return out


def _kind_of(path: Path, report: CheckReport) -> str | None:
    try:
        data, _text = _read_toml(path)
    except PolicyFileError as exc:
        report.problems.extend(exc.problems)
        return None
    if "handlers" in data:
        return "handlers"
    if "delegations" in data:
        return "delegations"
    if "groups" in data and "flows" not in data:
        return "groups"
    return "agreement"


def _load_agreement(path: Path, report: CheckReport) -> None:
    try:
        data, _text = _read_toml(path)
        agreement = parse_agreement(data, str(path))
    except PolicyFileError as exc:
        report.problems.extend(_with_lines(exc.problems, path))
        return
    if path.parent == BUNDLED_DIR and path.stem != agreement.id:
        report.problems.append(
            FileProblem(
                str(path),
                "id",
                N_("a bundled agreement is found by its id, but this file is named {name}").format(
                    name=path.name),
                N_("rename the file to {id}.toml").format(id=agreement.id),
                locate(_text, "id"),
            )
        )
    if agreement.scope is not None:
        registry = _load_delegations(path.parent / agreement.scope.registry, report)
        if registry is None:
            return
        if registry.agreement != agreement.id:
            report.problems.append(
                FileProblem(
                    str(path.parent / agreement.scope.registry),
                    "agreement",
                    N_("the registry is for {agreement}, not {id}").format(
                        agreement=registry.agreement, id=agreement.id),
                    N_('set agreement = "{id}" or point scope.registry elsewhere').format(
                        id=agreement.id),
                    locate(_read_text(path.parent / agreement.scope.registry), "agreement"),
                )
            )
            return
        agreement = agreement.with_delegations(registry)
    groups_path = path.parent / f"{agreement.id}{GROUPS_SUFFIX}"
    if groups_path.exists():
        groups = _load_groups(groups_path, report)
        if groups is None:
            return
        try:
            agreement = agreement.with_groups(groups)
        except ValueError as exc:
            report.problems.append(
                FileProblem(str(groups_path), "groups", str(exc),
                            N_("name only parties of the agreement, each member once"),
                            locate(_read_text(groups_path), "groups"))
            )
            return
    if agreement.id in report.agreements:
        report.problems.append(
            FileProblem(
                str(path),
                "id",
                N_("the same agreement id is loaded twice"),
                N_("list each agreement once"),
                locate(_text, "id"),
            )
        )
        return
    report.agreements[agreement.id] = agreement
    report.valid.append(N_("{path}: agreement {id}").format(path=path, id=agreement.id))


def _load_delegations(path: Path, report: CheckReport) -> DelegationRegistry | None:
    try:
        data, _text = _read_toml(path)
        registry = DelegationRegistry.from_mapping(data, str(path))
    except PolicyFileError as exc:
        report.problems.extend(_with_lines(exc.problems, path))
        return None
    report.valid.append(
        N_("{path}: delegation registry of {agreement} ({count} municipalities)").format(
            path=path, agreement=registry.agreement, count=len(registry.entries))
    )
    return registry


def _load_groups(path: Path, report: CheckReport) -> GroupRegistry | None:
    try:
        data, _text = _read_toml(path)
        registry = GroupRegistry.from_mapping(data, str(path))
    except PolicyFileError as exc:
        report.problems.extend(_with_lines(exc.problems, path))
        return None
    counts = ", ".join(f"{g} {len(v.members)}" for g, v in registry.groups.items())
    report.valid.append(N_("{path}: party groups of {agreement} ({counts} members)").format(
                            path=path, agreement=registry.agreement, counts=counts))
    return registry


def _load_delegations_alone(path: Path, report: CheckReport) -> None:
    registry = _load_delegations(path, report)
    if registry is not None and registry.as_of is None:
        report.warnings.append(N_("{path}: no as_of date; record when the list was last "
                                  "updated").format(path=path))


def _check_handlers(path: Path, report: CheckReport, on: dt.date, party: str | None) -> None:
    try:
        data, _text = _read_toml(path)
        registry = Registry.from_mapping(data, str(path))
    except PolicyFileError as exc:
        report.problems.extend(_with_lines(exc.problems, path))
        return
    errors, warnings = check_designations(report.agreements, registry, str(path), on, party)
    report.problems.extend(_with_lines(errors, path))
    report.warnings.extend(warnings)
    report.valid.append(N_("{path}: handler registry ({count} handlers)").format(
                            path=path, count=len(registry.handlers)))


_ARRAY_HEADER = re.compile(r"\[\[\s*([^\]]+?)\s*\]\]")
_TABLE_HEADER = re.compile(r"\[\s*([^\]]+?)\s*\]")
_ASSIGNMENT = re.compile(r'("[^"]*"|[A-Za-z0-9_-]+(?:\s*\.\s*[A-Za-z0-9_-]+)*)\s*=\s*(.*)')
_INLINE_KEY = re.compile(r'[{,]\s*("[^"]*"|[A-Za-z0-9_-]+)\s*=')
_NAMING_KEY = re.compile(r'(?:id|name|code)\s*=\s*"([^"]*)"')


def _dotted(name: str) -> str:
    return (
        ".".join(part.strip().strip('"') for part in name.split("."))
        if not (name.startswith('"') and name.endswith('"'))
        else name.strip('"')
    )


def _key_lines(text: str) -> tuple[dict[str, int], dict[str, str]]:
    """Map each key path found in the text to its line; and aliases "arr.ID" → "arr[i]"."""
    lines: dict[str, int] = {}
    aliases: dict[str, str] = {}
    counters: dict[str, int] = {}
    table = ""
    array_key: str | None = None  # inside a multi-line array value
    depth = 0
    item = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = _without_comment(raw).strip()
        if not stripped:
            continue
        if array_key is not None:
            if stripped.startswith("{"):
                path = f"{array_key}[{item}]"
                lines.setdefault(path, number)
                for match in _INLINE_KEY.finditer(stripped):
                    lines.setdefault(f"{path}.{match.group(1).strip(chr(34))}", number)
                item += 1
            depth += _bracket_balance(stripped)
            if depth <= 0:
                array_key = None
            continue
        if header := _ARRAY_HEADER.fullmatch(stripped):
            name = _dotted(header.group(1))
            index = counters.get(name, 0)
            counters[name] = index + 1
            table = f"{name}[{index}]"
            lines.setdefault(name, number)
            lines[table] = number
            continue
        if header := _TABLE_HEADER.fullmatch(stripped):
            table = _dotted(header.group(1))
            lines.setdefault(table, number)
            continue
        assignment = _ASSIGNMENT.match(stripped)
        if assignment is None:
            continue
        full = f"{table}.{_dotted(assignment.group(1))}" if table else _dotted(assignment.group(1))
        lines.setdefault(full, number)
        value = assignment.group(2)
        if table.endswith("]") and (naming := _NAMING_KEY.fullmatch(stripped)):
            aliases.setdefault(f"{table.rsplit('[', 1)[0]}.{naming.group(1)}", table)
        if value.startswith("{"):
            for match in _INLINE_KEY.finditer(value):
                lines.setdefault(f"{full}.{match.group(1).strip(chr(34))}", number)
        elif value.startswith("[") and _bracket_balance(value) > 0:
            array_key, depth, item = full, _bracket_balance(value), 0
    return lines, aliases


def _without_comment(line: str) -> str:
    # A # outside double quotes starts a comment (agreement files quote every string).
    quoted = False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "#" and not quoted:
            return line[:i]
    return line


def _bracket_balance(text: str) -> int:
    balance = 0
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif not quoted:
            balance += (char == "[") - (char == "]")
    return balance


def _parent_key(key: str) -> str:
    """ "a.b[2].c" → "a.b[2]" → "a.b" → "a" → ""."""
    if key.endswith("]"):
        return key[: key.rindex("[")]
    return key.rsplit(".", 1)[0] if "." in key else ""


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
