"""A broken configuration or agreement file is explained in the reader's language: Japanese under
a Japanese locale, English under C; the keys and rule ids stay as written, the exit codes do not
change, and the daemon (`tachiai run`) says it in English whatever the locale."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway import i18n
from gateway.config.policyfiles import BUNDLED_DIR, problems_error
from gateway.errors import CheckFailed, ConfigError
from policies.errors import FileProblem
from policies.wording import R_
from tests.conftest import has_japanese, tachiai_command

ROOT = Path(__file__).resolve().parents[2]
JAPANESE_LOCALE = {"LANGUAGE": "", "LC_ALL": "", "LC_MESSAGES": "", "LANG": "ja_JP.UTF-8"}
ENGLISH = {"LANGUAGE": "", "LC_ALL": "", "LC_MESSAGES": "", "LANG": "C"}


def _tachiai(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*tachiai_command(), *args], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo configuration made by `tachiai init --demo`, to be broken by each test."""
    where = tmp_path_factory.mktemp("demo")
    made = _tachiai("init", str(where / "gw"), "--demo", env=ENGLISH, cwd=where)
    assert made.returncode == 0, made.stderr
    return where / "gw"


def _broken_config(demo_dir: Path, old: str, new: str) -> Path:
    text = (demo_dir / "tachiai.toml").read_text(encoding="utf-8")
    assert old in text
    bad = demo_dir / f"bad-{abs(hash(new))}.toml"
    bad.write_text(text.replace(old, new, 1), encoding="utf-8")
    return bad


def test_a_bad_value_in_the_configuration_is_explained_in_japanese_or_english(
        demo_dir: Path) -> None:
    bad = _broken_config(demo_dir, "compression_level = 6", "compression_level = 12")
    ja = _tachiai("agreements", "check", "--config", str(bad), env=JAPANESE_LOCALE, cwd=demo_dir)
    en = _tachiai("agreements", "check", "--config", str(bad), env=ENGLISH, cwd=demo_dir)
    assert ja.returncode == en.returncode == ConfigError.exit_code
    assert "sealing.compression_level は 1 から 9 までの整数でなければなりません" in ja.stderr
    assert "次の手順: 1 は最も速く暗号化し" in ja.stderr
    assert str(bad) in ja.stderr  # the file is named as it is
    assert "sealing.compression_level must be a whole number from 1 to 9" in en.stderr
    assert "next: 1 seals fastest" in en.stderr
    assert not has_japanese(en.stderr)


def test_a_misspelt_setting_is_refused_in_japanese_with_the_setting_names_unchanged(
        demo_dir: Path) -> None:
    bad = _broken_config(demo_dir, "settle_seconds =", "settle_secnds =")
    ja = _tachiai("transfers", "list", "--config", str(bad), env=JAPANESE_LOCALE, cwd=demo_dir)
    en = _tachiai("transfers", "list", "--config", str(bad), env=ENGLISH, cwd=demo_dir)
    assert ja.returncode == en.returncode == ConfigError.exit_code
    assert "intake.settle_secnds という設定はありません" in ja.stderr
    assert "'settle_seconds' のことですか?" in ja.stderr
    assert "intake.settle_secnds is not a setting" in en.stderr
    assert "did you mean 'settle_seconds'?" in en.stderr
    assert not has_japanese(en.stderr)


def test_the_daemon_refuses_a_bad_configuration_in_english_under_a_japanese_locale(
        demo_dir: Path) -> None:
    bad = _broken_config(demo_dir, "compression_level = 6", "compression_level = 0")
    ran = _tachiai("run", "--config", str(bad), env=JAPANESE_LOCALE, cwd=demo_dir)
    assert ran.returncode == ConfigError.exit_code
    assert "sealing.compression_level must be a whole number from 1 to 9" in ran.stderr
    assert not has_japanese(ran.stderr)


def test_a_broken_agreement_lists_every_problem_in_japanese_or_english(
        demo_dir: Path, tmp_path: Path) -> None:
    agreement = tmp_path / "broken.toml"
    shutil.copy(BUNDLED_DIR / "isa-nhi-status-loss.toml", agreement)
    text = agreement.read_text(encoding="utf-8")
    lines = text.split("\n")
    first = {key: next(i for i, line in enumerate(lines) if line.startswith(f"{key} = "))
             for key in ("legal_basis", "witnesses")}
    lines[first["legal_basis"]] = 'legal_basis = "whim"'
    lines[first["witnesses"]] = "witnesses = 0"
    agreement.write_text("\n".join(lines), encoding="utf-8")

    ja = _tachiai("agreements", "check", str(agreement), env=JAPANESE_LOCALE, cwd=tmp_path)
    en = _tachiai("agreements", "check", str(agreement), env=ENGLISH, cwd=tmp_path)
    assert ja.returncode == en.returncode == CheckFailed.exit_code
    assert "確認書または台帳のファイルに問題が 2 件あります" in ja.stderr
    # Keys stay as written in the file; messages and fixes are translated, each on its line.
    assert "legal_basis: 不明な根拠です (修正: 次のいずれかを使ってください: appi-61" in ja.stderr
    assert ("witnesses: 1 以上の整数でなければなりません (修正: witnesses = 1 (以上) を設定して"
            "ください)") in ja.stderr
    assert "次の手順: 上に示した各行を修正してから" in ja.stderr
    assert "2 problem(s) in agreement or registry files" in en.stderr
    assert "legal_basis: unknown legal basis (fix: use one of: appi-61" in en.stderr
    assert "witnesses: must be an integer of at least 1 (fix: set witnesses = 1 (or more))" \
        in en.stderr
    assert not has_japanese(en.stderr.replace(str(agreement), ""))


@pytest.mark.usefixtures("japanese")
def test_each_line_of_a_problem_list_is_translated_on_its_own() -> None:
    """Regression: a one-line template matched across the lines of the list, so the first line's
    fix swallowed the lines after it and they stayed English."""
    same = [FileProblem("a.toml", f"flows[{i}].witnesses", R_("must be an integer of at least 1"),
                        R_("set witnesses = 1 (or more)"), 10 * i + 1) for i in range(3)]
    text = i18n.wording(str(problems_error(same, ConfigError)))
    lines = text.split("\n")
    assert lines[0] == "確認書または台帳のファイルに問題が 3 件あります:"
    for i, line in enumerate(lines[1:]):
        assert line == (f"  a.toml:{10 * i + 1}: flows[{i}].witnesses: 1 以上の整数でなければ"
                        "なりません (修正: witnesses = 1 (以上) を設定してください)")


@pytest.mark.usefixtures("japanese")
def test_a_key_or_path_is_never_translated_even_when_it_is_also_a_word() -> None:
    # "id" is also the label of a field the CLI translates; as a file's key it stays "id".
    problem = FileProblem("x.toml", "id", R_("not a valid id"), R_("write [[flows]]"), 3)
    assert i18n.wording(str(problem)) == (
        "x.toml:3: id: 正しい ID ではありません (修正: [[flows]] と書いてください)")


# -- every message of a configuration or agreement file is marked ---------------------------------


def _unmarked(path: Path, calls: dict[str, tuple[int, ...]], hint: bool) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
            node.func, "id", "")
        if name not in calls:
            continue
        args = [a for i, a in enumerate(node.args) if i in calls[name]]
        if hint:
            args += [k.value for k in node.keywords if k.arg == "hint"]
        for arg in args:
            if isinstance(arg, ast.JoinedStr) and _only_places(arg):
                continue  # "PLACE: message", the message made (and marked) elsewhere
            literal = isinstance(arg, ast.JoinedStr) or (
                isinstance(arg, ast.Constant) and isinstance(arg.value, str))
            if literal:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def _only_places(text: ast.JoinedStr) -> bool:
    literal = "".join(v.value for v in text.values if isinstance(v, ast.Constant))
    return " " not in literal.replace(": ", "")


def test_every_configuration_error_and_agreement_problem_is_marked_for_translation() -> None:
    errors = {"ConfigError": (0,), "CheckFailed": (0,)}
    unmarked = []
    for path in sorted((ROOT / "gateway" / "config").glob("*.py")):
        unmarked += _unmarked(path, errors, hint=True)
        unmarked += _unmarked(path, {"FileProblem": (2, 3), "Finding": (1, 2)}, hint=False)
    for path in sorted((ROOT / "policies").glob("*.py")):
        unmarked += _unmarked(path, {"fail": (1, 2), "FileProblem": (2, 3)}, hint=False)
    assert unmarked == [], "mark these with N_() (gateway) or R_() (policies)"
