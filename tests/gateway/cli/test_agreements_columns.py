"""`tachiai agreements check` on the column switches of issue 11: `allow_sign` (formula
injection) must be true or false, and the new column types are known to the checker."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config.policyfiles import BUNDLED_DIR

SKILLED = "isa-mhlw-specified-skilled.toml"
OLD = '{ name = "分野", type = "text", max_length = 60, required = false },'


def copy_with(tmp_path: Path, new: str) -> Path:
    shutil.copy(BUNDLED_DIR / SKILLED, tmp_path)
    path = tmp_path / SKILLED
    text = path.read_text(encoding="utf-8")
    assert OLD in text
    path.write_text(text.replace(OLD, new, 1), encoding="utf-8")
    return path


def test_allow_sign_true_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = '{ name = "分野", type = "text", max_length = 60, required = false, allow_sign = true },'
    assert main(["agreements", "check", str(copy_with(tmp_path, new))]) == 0


def test_allow_sign_not_a_boolean_is_named_with_its_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = '{ name = "分野", type = "text", max_length = 60, required = false, allow_sign = "yes" },'
    code = main(["agreements", "check", str(copy_with(tmp_path, new))])
    out, err = capsys.readouterr()
    assert code == 1
    assert "allow_sign" in out + err and "true" in out + err


def test_a_misspelt_switch_is_an_unknown_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = '{ name = "分野", type = "text", max_length = 60, required = false, formula_ok = true },'
    code = main(["agreements", "check", str(copy_with(tmp_path, new))])
    out, err = capsys.readouterr()
    assert code == 1 and "formula_ok" in out + err
