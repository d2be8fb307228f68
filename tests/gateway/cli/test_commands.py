"""The shape of the command line: `--version`, and a command group given without an action
printing that group's help (exit 2) instead of the top-level help or a traceback."""

from __future__ import annotations

import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from gateway import cli
from tests.conftest import ROOT, tachiai_command

GROUPS = {
    "transfers": ["list", "show", "statement", "retry", "link"],
    "holdings": ["list", "show", "terms", "open", "certify", "retry"],
    "audit": ["log", "verify", "prove", "check-proof", "query", "report", "public-key",
              "checkpoint", "copy"],
    "agreements": ["list", "check", "show"],
}


def pyproject_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def test_version_is_printed_by_the_real_command() -> None:
    result = subprocess.run([*tachiai_command(), "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "tachiai 0.1.0\n"
    assert result.stdout == f"tachiai {pyproject_version()}\n"


def test_version_falls_back_to_pyproject_when_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert cli.version() == pyproject_version()


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_a_group_alone_prints_its_own_help_and_exits_2(
    group: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # No configuration is needed (or read) to be told what the actions are.
    assert cli.main([group, "--config", str(tmp_path / "missing.toml")]) == 2
    out, err = capsys.readouterr()
    assert out.startswith(f"usage: tachiai {group} "), out
    for action in GROUPS[group]:
        assert f"\n    {action} " in out, f"{group} help lacks {action}"
    assert "Traceback" not in err


def test_an_action_of_a_group_still_runs_its_own_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The group's help is only a default: `agreements check --bundled` checks, exit 0.
    assert cli.main(["agreements", "check", "--bundled"]) == 0
    assert "all valid" in capsys.readouterr().out


def test_no_command_prints_the_top_level_help_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: tachiai [-h]") and "exit codes:" in out
