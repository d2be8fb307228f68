"""Loading agreement, delegation and handler files: registries attached, and every problem named
with file, line, key and fix — the same words for the daemon (ConfigError, 78) and for
`agreements check` (CheckFailed, 1)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

import gateway.config.policyfiles as policyfiles
from gateway.config.policyfiles import (
    BUNDLED_DIR,
    bundled_agreement_paths,
    check_paths,
    load_agreements,
    load_registry,
    locate,
    problems_error,
)
from gateway.errors import CheckFailed, ConfigError

TODAY = dt.date(2026, 11, 20)
BUNDLED = ["isa-nhi-status-loss", "isa-mhlw-specified-skilled", "shinjuku-immigration-arrears"]
DELEGATIONS = "isa-nhi-status-loss.delegations.toml"


def copy_bundled(tmp: Path) -> dict[str, Path]:
    """The bundled files copied into tmp, by agreement id (and "delegations")."""
    out = {}
    for agreement_id in BUNDLED:
        out[agreement_id] = Path(shutil.copy(BUNDLED_DIR / f"{agreement_id}.toml", tmp))
    out["delegations"] = Path(shutil.copy(BUNDLED_DIR / DELEGATIONS, tmp))
    return out


def break_text(path: Path, old: str, new: str) -> int:
    """Replace the first `old` in the file; return the line number it is on."""
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    index = text.index(old)
    path.write_text(text[:index] + new + text[index + len(old) :], encoding="utf-8")
    return text[:index].count("\n") + 1


def test_bundled_paths_are_the_three_agreements() -> None:
    assert [p.stem for p in bundled_agreement_paths()] == sorted(BUNDLED)


def test_loading_attaches_the_delegation_registry() -> None:
    loaded = load_agreements(BUNDLED, Path("/nonexistent"))
    assert set(loaded) == set(BUNDLED)
    nhi = loaded["isa-nhi-status-loss"]
    assert nhi.delegations is not None and nhi.delegations.covers("131041", TODAY)
    assert loaded["shinjuku-immigration-arrears"].delegations is None


@pytest.mark.parametrize(
    ("agreement_id", "old", "new", "key", "fix_words"),
    [
        (
            "isa-nhi-status-loss",
            "witnesses = 1 ",
            "witnesses = 0 ",
            "flows[0].witnesses",
            "witnesses = 1",
        ),
        ("isa-nhi-status-loss", 'outside = "split"', 'outside = "drop"', "scope.outside", "reject"),
        (
            "isa-nhi-status-loss",
            '{ name = "性別", type = "sex" }',
            '{ name = "性別", type = "gender" }',
            "datasets.status-change.columns[3].type",
            "sex",
        ),
        (
            "isa-mhlw-specified-skilled",
            'due = "without-delay"',
            'due = "someday"',
            "flows[1].schedule.due",
            "without-delay",
        ),
        (
            "isa-mhlw-specified-skilled",
            'jps = ["jps-queried-municipalities", "j-lis"]',
            'jps = ["jps-queried-municipalities", "anyone"]',
            "onward.chain.jps",
            "use one of",
        ),
        (
            "shinjuku-immigration-arrears",
            'legal_basis = "appi-69-2-iii"',
            'legal_basis = "consent"',
            "legal_basis",
            "appi-69-2-iii",
        ),
        (
            "shinjuku-immigration-arrears",
            'reply_to = "inquiry"',
            'reply_to = "provision"',
            "flows[2].reply_to",
            'from = "tokyo-bureau"',
        ),
        (
            "shinjuku-immigration-arrears",
            "[report]\nevery",
            "[report_]\nevery",
            "report_",
            "remove it",
        ),
    ],
)
def test_a_broken_copy_names_file_line_key_and_fix(
    tmp_path: Path, agreement_id: str, old: str, new: str, key: str, fix_words: str
) -> None:
    paths = copy_bundled(tmp_path)
    line = break_text(paths[agreement_id], old, new)
    with pytest.raises(ConfigError) as caught:
        load_agreements([str(paths[agreement_id])], tmp_path)
    message = str(caught.value)
    expected = f"{paths[agreement_id]}:{line}: {key}: "
    assert expected in message, message
    assert "(fix: " in message and fix_words in message
    assert caught.value.exit_code == 78


def test_a_missing_key_points_at_its_table(tmp_path: Path) -> None:
    paths = copy_bundled(tmp_path)
    break_text(paths["isa-nhi-status-loss"], 'dataset = "status-change"\n', "")
    with pytest.raises(ConfigError) as caught:
        load_agreements([str(paths["isa-nhi-status-loss"])], tmp_path)
    text = paths["isa-nhi-status-loss"].read_text(encoding="utf-8")
    flows_line = text[: text.index("[[flows]]")].count("\n") + 1
    assert f":{flows_line}: flows[0].dataset: missing" in str(caught.value)


def test_a_syntax_error_names_its_line(tmp_path: Path) -> None:
    paths = copy_bundled(tmp_path)
    line = break_text(
        paths["shinjuku-immigration-arrears"], 'kind = "municipality"', 'kind = "municipality'
    )
    with pytest.raises(ConfigError) as caught:
        load_agreements([str(paths["shinjuku-immigration-arrears"])], tmp_path)
    assert f"shinjuku-immigration-arrears.toml:{line}: (syntax)" in str(caught.value)


def test_a_broken_delegation_registry_names_its_own_file_and_line(tmp_path: Path) -> None:
    paths = copy_bundled(tmp_path)
    line = break_text(paths["delegations"], 'code = "131041"', 'code = "131042"')
    with pytest.raises(ConfigError) as caught:
        load_agreements([str(paths["isa-nhi-status-loss"])], tmp_path)
    assert f"{paths['delegations']}:{line}: delegations[0].code:" in str(caught.value)


def test_a_missing_or_foreign_delegation_registry_is_refused(tmp_path: Path) -> None:
    paths = copy_bundled(tmp_path)
    break_text(
        paths["delegations"], 'agreement = "isa-nhi-status-loss"', 'agreement = "another-agreement"'
    )
    with pytest.raises(ConfigError, match="the registry is for another-agreement"):
        load_agreements([str(paths["isa-nhi-status-loss"])], tmp_path)
    paths["delegations"].unlink()
    with pytest.raises(ConfigError, match="no such file"):
        load_agreements([str(paths["isa-nhi-status-loss"])], tmp_path)


def test_a_bundled_file_must_be_named_by_its_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(BUNDLED_DIR / "shinjuku-immigration-arrears.toml", tmp_path / "renamed.toml")
    monkeypatch.setattr(policyfiles, "BUNDLED_DIR", tmp_path)
    with pytest.raises(ConfigError, match=r"rename the file to shinjuku-immigration-arrears\.toml"):
        load_agreements(["renamed"], tmp_path)


def test_the_same_agreement_twice(tmp_path: Path) -> None:
    paths = copy_bundled(tmp_path)
    with pytest.raises(ConfigError, match="loaded twice"):
        load_agreements(
            ["shinjuku-immigration-arrears", str(paths["shinjuku-immigration-arrears"])], tmp_path
        )


def test_check_and_daemon_use_the_same_words(tmp_path: Path) -> None:
    paths = copy_bundled(tmp_path)
    break_text(paths["isa-nhi-status-loss"], "witnesses = 1 ", "witnesses = 0 ")
    report = check_paths([paths["isa-nhi-status-loss"]], TODAY)
    checked = problems_error(report.problems, CheckFailed)
    with pytest.raises(ConfigError) as caught:
        load_agreements([str(paths["isa-nhi-status-loss"])], tmp_path)
    assert str(checked) == str(caught.value)
    assert checked.exit_code == 1 and caught.value.exit_code == 78


def test_check_paths_tells_files_apart(tmp_path: Path) -> None:
    paths = copy_bundled(tmp_path)
    report = check_paths([*paths.values()], TODAY)
    assert not report.problems
    assert set(report.agreements) == set(BUNDLED)
    assert any("delegation registry" in v for v in report.valid)


REGISTRY = """
[[handlers]]
name = "sato"
party = "isa"
roles = ["send"]
public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0000000000000000000"
agreements = ["isa-nhi-status-loss"]
designated_from = 2023-03-29

[[handlers]]
name = "kimura"
party = "tokyo-bureau"
roles = ["receive"]
public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0000000000000000001"
agreements = ["isa-nhi-status-loss"]
designated_from = 2023-03-29
"""


def test_a_handler_registry_is_cross_checked_against_the_agreements(tmp_path: Path) -> None:
    paths = copy_bundled(tmp_path)
    registry = tmp_path / "registry.toml"
    registry.write_text(REGISTRY, encoding="utf-8")
    report = check_paths([paths["isa-nhi-status-loss"], registry], TODAY)
    (problem,) = report.problems
    assert problem.key == "handlers.kimura.party"
    assert problem.line == REGISTRY.count("\n", 0, REGISTRY.index('party = "tokyo-bureau"')) + 1
    assert any("witness" in w for w in report.warnings)


def test_a_broken_handler_registry_is_a_config_error_with_lines(tmp_path: Path) -> None:
    registry = tmp_path / "registry.toml"
    registry.write_text(REGISTRY.replace('roles = ["send"]', 'roles = ["sing"]'), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_registry(registry)
    assert f"{registry}:5: handlers[0].roles:" in str(caught.value)


@pytest.mark.parametrize(
    ("key", "line_text"),
    [
        ("id", 'id = "isa-nhi-status-loss"'),
        ("flows[0].schedule.due", "schedule = {"),
        ("flows.monthly.witnesses", "witnesses = 1"),
        ("datasets.status-change.columns[1].type", "住居地(地方公共団体コード)"),
        ("datasets.status-change.categories[2]", "kokuji-40"),
        ("parties.nhi-central.kind", 'kind = "association"'),
        ("onward.chain.nhi-federations", 'nhi-federations = ["municipalities"]'),
        ("obligations[1].party", 'party = "nhi-central"'),
        ("clauses.scope", '"scope" = '),
        ("scope.column", 'column = "住居地(地方公共団体コード)"'),
    ],
)
def test_locate_finds_the_line_of_a_key(key: str, line_text: str) -> None:
    text = (BUNDLED_DIR / "isa-nhi-status-loss.toml").read_text(encoding="utf-8")
    line = locate(text, key)
    assert line is not None
    assert line_text in text.splitlines()[line - 1], (key, text.splitlines()[line - 1])


def test_locate_falls_back_to_the_top_for_unknown_keys() -> None:
    assert locate('id = "x"\n[a]\nb = 1\n', "nothing.here") == 1
    assert locate('id = "x"\n[a]\nb = 1\n', "a.c") == 2
    assert locate("", "id") is None
