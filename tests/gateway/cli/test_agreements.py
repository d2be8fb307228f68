"""`tachiai agreements check|show` and `tachiai calendar`: exit codes, messages with file and
line, JSON shapes, and the daemon refusing an invalid agreement with the same words."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from gateway import bootstrap
from gateway.cli import main
from gateway.config.policyfiles import BUNDLED_DIR
from gateway.config.settings import load_settings
from gateway.errors import ConfigError
from gateway.runtime import Runtime
from gateway.state import clock
from tests.policies.test_calendar import DUE_DATES

BUNDLED = ["isa-nhi-status-loss", "isa-mhlw-specified-skilled", "shinjuku-immigration-arrears"]


@pytest.fixture
def today(monkeypatch: pytest.MonkeyPatch) -> dt.date:
    day = dt.date(2026, 11, 20)
    monkeypatch.setattr(clock, "today", lambda: day)
    return day


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    bootstrap.init(tmp_path / "demo", demo=True)
    return tmp_path / "demo" / "tachiai.toml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def broken_copy(tmp_path: Path, agreement_id: str, old: str, new: str) -> tuple[Path, int]:
    """A copy of a bundled agreement (with its registry) with one text change, and its line."""
    for name in (f"{agreement_id}.toml", "isa-nhi-status-loss.delegations.toml"):
        shutil.copy(BUNDLED_DIR / name, tmp_path)
    path = tmp_path / f"{agreement_id}.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path, text[: text.index(old)].count("\n") + 1


def test_the_bundled_agreements_pass_check(
    capsys: pytest.CaptureFixture[str], today: dt.date
) -> None:
    code, out, _err = run(capsys, "agreements", "check", "--bundled")
    assert code == 0
    for agreement_id in BUNDLED:
        assert f"agreement {agreement_id}" in out
    assert "all valid: 3 agreement(s)" in out


def test_named_files_pass_check(capsys: pytest.CaptureFixture[str], today: dt.date) -> None:
    paths = [str(BUNDLED_DIR / f"{a}.toml") for a in BUNDLED]
    code, out, _err = run(
        capsys,
        "agreements",
        "check",
        *paths,
        str(BUNDLED_DIR / "isa-nhi-status-loss.delegations.toml"),
    )
    assert code == 0 and "all valid" in out


@pytest.mark.parametrize(
    ("agreement_id", "old", "new", "key"),
    [
        (
            "isa-nhi-status-loss",
            'my_number = "forbidden"',
            'my_number = "allowed"',
            "datasets.status-change.my_number",
        ),
        ("isa-mhlw-specified-skilled", 'medium = "post"', 'medium = "fax"', "flows[1].medium"),
        (
            "shinjuku-immigration-arrears",
            "valid_until = 2027-03-31",
            "valid_until = 2026-03-31",
            "valid_until",
        ),
    ],
)
def test_a_broken_copy_fails_check_with_file_line_key_and_fix(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    today: dt.date,
    agreement_id: str,
    old: str,
    new: str,
    key: str,
) -> None:
    path, line = broken_copy(tmp_path, agreement_id, old, new)
    code, _out, err = run(capsys, "agreements", "check", str(path))
    assert code == 1
    assert f"{path}:{line}: {key}: " in err and "(fix: " in err
    assert "next: fix each line named above" in err


def test_check_of_a_configuration_and_the_daemon_say_the_same(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, demo: Path, today: dt.date
) -> None:
    code, out, _err = run(capsys, "agreements", "check", "--config", str(demo))
    assert code == 0 and "handler registry (6 handlers)" in out
    path, line = broken_copy(tmp_path, "isa-nhi-status-loss", "witnesses = 1 ", "witnesses = 0 ")
    config = demo.read_text(encoding="utf-8").replace(
        'agreements = ["isa-nhi-status-loss"]', f'agreements = ["{path}"]'
    )
    demo.write_text(config, encoding="utf-8")
    code, _out, check_err = run(capsys, "agreements", "check", "--config", str(demo))
    assert code == 1 and f"{path}:{line}: flows[0].witnesses" in check_err
    with pytest.raises(ConfigError) as refused:
        Runtime.open(load_settings(demo))  # what the daemon does first when it starts
    problem_lines = [ln for ln in check_err.splitlines() if str(path) in ln]
    assert problem_lines and all(ln.strip() in str(refused.value) for ln in problem_lines)
    code, _out, _err = run(capsys, "agreements", "list", "--config", str(demo))
    assert code == 78


def test_show_summarises_terms_flows_and_next_due_dates(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, today: dt.date
) -> None:
    code, out, _err = run(
        capsys,
        "agreements",
        "show",
        "isa-nhi-status-loss",
        "--json",
        "--config",
        str(tmp_path / "none.toml"),
    )
    assert code == 0
    data = json.loads(out)
    assert data["id"] == "isa-nhi-status-loss" and data["legal_basis"] == "appi-61"
    flow, *onward = data["flows"]
    assert [f["id"] for f in onward] == ["to-federations", "to-municipalities"]
    assert flow["next_due"][0] == {"period": "2026-10", "due": "2026-11-27"}
    assert flow["next_due"][1] == {"period": "2026-11", "due": "2026-12-25"}
    assert flow["catch_up_from"] == "2022-04-01" and flow["reaches"] == [
        "nhi-federations",
        "municipalities",
    ]
    assert data["scope"]["outside"] == "split" and data["scope"]["municipalities"] == 4
    code, text, _err = run(
        capsys,
        "agreements",
        "show",
        "shinjuku-immigration-arrears",
        "--config",
        str(tmp_path / "none.toml"),
    )
    assert code == 0
    assert "considerable reason (APPI art. 69(2)(iii))" in text
    assert "renewal: fiscal-year" in text and "(6) 訂正" in text


def test_show_an_unknown_agreement(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _out, err = run(
        capsys, "agreements", "show", "no-such-agreement", "--config", str(tmp_path / "none.toml")
    )
    assert code == 65 and "isa-nhi-status-loss" in err


def test_calendar_json_lists_periods_and_due_dates(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _err = run(
        capsys,
        "calendar",
        "isa-nhi-status-loss",
        "--flow",
        "monthly",
        "--from",
        "2025-12",
        "--months",
        str(len(DUE_DATES)),
        "--json",
        "--config",
        str(tmp_path / "none.toml"),
    )
    assert code == 0
    assert json.loads(out) == [{"period": p, "due": d.isoformat()} for p, d in DUE_DATES]


def test_calendar_defaults_to_the_next_period_due(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, today: dt.date
) -> None:
    code, out, _err = run(
        capsys,
        "calendar",
        "isa-mhlw-specified-skilled",
        "--flow",
        "monthly",
        "--months",
        "2",
        "--config",
        str(tmp_path / "none.toml"),
    )
    assert code == 0
    assert "2026-10  due 2026-11-27 (金)" in out and "2026-11  due 2026-12-25 (金)" in out


@pytest.mark.parametrize(
    ("argv", "exit_code"),
    [
        (["shinjuku-immigration-arrears", "--flow", "provision"], 65),  # not monthly
        (["isa-nhi-status-loss", "--flow", "weekly"], 65),
        (["isa-nhi-status-loss", "--flow", "monthly", "--from", "2026-13"], 2),
        (["isa-nhi-status-loss", "--flow", "monthly", "--months", "0"], 2),
        (["nope", "--flow", "monthly"], 65),
    ],
)
def test_calendar_refuses_what_has_no_due_dates(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], exit_code: int
) -> None:
    code, _out, err = run(capsys, "calendar", *argv, "--config", str(tmp_path / "none.toml"))
    assert code == exit_code and err.startswith("tachiai: ")
