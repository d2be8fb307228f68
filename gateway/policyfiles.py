"""Loads agreement (確認書) and handler-registry files from disk into `policies` values.

Bundled agreements are found by id in the `policies/agreements/` folder; others by path. Every
problem in every file is reported at once as a ConfigError, so `tachiai agreements check` and
the daemon's refusal to start say the same thing.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path

import policies
from gateway.errors import ConfigError
from policies.agreement import Agreement
from policies.errors import FileProblem, PolicyFileError
from policies.handlers import Registry

BUNDLED_DIR = Path(policies.__file__).parent / "agreements"


def bundled_agreement_paths() -> list[Path]:
    return sorted(BUNDLED_DIR.glob("*.toml"))


def agreement_path(ref: str, base: Path) -> Path:
    """A bundled agreement's file by id, or a path relative to `base`."""
    if ref.endswith(".toml") or "/" in ref:
        return (base / ref).resolve()
    return BUNDLED_DIR / f"{ref}.toml"


def load_agreements(refs: Sequence[str], base: Path) -> dict[str, Agreement]:
    """Every referenced agreement, keyed by id.

    Raises:
        ConfigError: listing every problem of every file.
    """
    problems: list[FileProblem] = []
    out: dict[str, Agreement] = {}
    for ref in refs:
        path = agreement_path(ref, base)
        try:
            agreement = Agreement.from_mapping(_read_toml(path), str(path))
        except PolicyFileError as exc:
            problems.extend(exc.problems)
            continue
        if agreement.id in out:
            problems.append(FileProblem(str(path), "id", "the same agreement id is loaded twice",
                                        "list each agreement once"))
        out[agreement.id] = agreement
    if problems:
        raise _config_error(problems)
    return out


def load_registry(path: Path) -> Registry:
    """Raises: ConfigError listing every problem in the registry file."""
    try:
        return Registry.from_mapping(_read_toml(path), str(path))
    except PolicyFileError as exc:
        raise _config_error(list(exc.problems)) from exc


def _read_toml(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyFileError([FileProblem(str(path), "(file)", "no such file",
                                           "check the path or the agreement id")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyFileError([FileProblem(str(path), "(syntax)", str(exc),
                                           "fix the TOML syntax at that line")]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyFileError([FileProblem(str(path), "(file)", str(exc),
                                           "make the file readable UTF-8 text")]) from exc


def _config_error(problems: list[FileProblem]) -> ConfigError:
    lines = "\n".join(f"  {p}" for p in problems)
    return ConfigError(f"{len(problems)} problem(s) in agreement or registry files:\n{lines}")
