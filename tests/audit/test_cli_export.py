"""`tachiai audit query|report` exports as an auditor opens them in Excel: CSV, cp932, xlsx."""

from __future__ import annotations

import csv
import io
import os
import pty
import subprocess
from pathlib import Path

import openpyxl
import pytest

from audit.ledger import Ledger
from tests.audit.test_query_report import at, ev
from tests.conftest import tachiai_command

SYNTHETIC = "テスト🙂値"  # an obviously synthetic value cp932 cannot hold (the emoji)


def make_ledger(path: Path, note: str) -> Path:
    ledger = Ledger.open(path)
    ledger.append(
        [
            ev("transfer.dropped", "t-1", at("2026-10-05"), file_name="申請書.csv"),
            ev("transfer.checked", "t-1", at("2026-10-05", 11), actor="handler-s", note=note),
            ev("transfer.delivered", "t-1", at("2026-10-06")),
        ]
    )
    ledger.close()
    return path


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("exports")
    make_ledger(folder / "ledger.db", "佐藤 髙橋")
    make_ledger(folder / "emoji.db", SYNTHETIC)
    return folder


def run(desk: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "TACHIAI_CONFIG"}
    return subprocess.run(
        [*tachiai_command(), "audit", *args], cwd=desk, env=env, timeout=120, check=False,
        **({"capture_output": True} | kw),  # type: ignore[call-overload]
    )


def cells(data: bytes, encoding: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(encoding), newline="")))


def query(desk: Path, ledger: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run(desk, "query", "--ledger", ledger, *args)


def test_csv_has_a_bom_crlf_and_reads_back(desk: Path) -> None:
    r = query(desk, "ledger.db", "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"\xef\xbb\xbf") and r.stdout.endswith(b"\r\n")
    assert r.stdout.count(b"\r\n") == r.stdout.count(b"\n") == 4
    rows = cells(r.stdout, "utf-8-sig")
    assert rows[0] == ["seq", "time", "kind", "subject", "agreement", "actor", "data"]
    assert [row[2] for row in rows[1:]] == ["transfer.dropped", "transfer.checked",
                                            "transfer.delivered"]
    assert "申請書.csv" in rows[1][6] and "佐藤 髙橋" in rows[2][6]


def test_cp932_decodes_to_the_same_cells(desk: Path) -> None:
    utf8 = cells(query(desk, "ledger.db", "--format", "csv").stdout, "utf-8-sig")
    r = query(desk, "ledger.db", "--format", "csv", "--encoding", "cp932")
    assert r.returncode == 0, r.stderr
    assert not r.stdout.startswith(b"\xef\xbb\xbf") and r.stdout.endswith(b"\r\n")
    assert cells(r.stdout, "cp932") == utf8


def test_xlsx_opens_with_the_same_cells(desk: Path, tmp_path: Path) -> None:
    utf8 = cells(query(desk, "ledger.db", "--format", "csv").stdout, "utf-8-sig")
    out = tmp_path / "events.xlsx"
    r = query(desk, "ledger.db", "--format", "xlsx", "--output", str(out))
    assert r.returncode == 0 and r.stdout == b"", r.stderr
    sheet = openpyxl.load_workbook(out).active
    assert sheet is not None
    assert [[c or "" for c in row] for row in sheet.values] == utf8


def test_a_cell_cp932_cannot_hold_is_refused_by_place(desk: Path, tmp_path: Path) -> None:
    out = tmp_path / "refused.csv"
    for extra in ((), ("--output", str(out))):
        r = query(desk, "emoji.db", "--format", "csv", "--encoding", "cp932", *extra)
        assert r.returncode == 65 and r.stdout == b""
        message = r.stderr.decode()
        assert "row 3" in message and "'data'" in message and "cp932" in message
        assert "🙂" not in message and "テスト" not in message
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_replace_writes_question_marks_and_warns_with_the_count(desk: Path) -> None:
    r = query(desk, "emoji.db", "--format", "csv", "--encoding", "cp932", "--replace")
    assert r.returncode == 0, r.stderr
    assert "テスト?値" in cells(r.stdout, "cp932")[2][6]
    assert "WARNING: 1 character(s)" in r.stderr.decode()


def test_xlsx_is_never_written_to_a_terminal(desk: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        r = run(desk, "query", "--ledger", "ledger.db", "--format", "xlsx",
                capture_output=False, stdout=terminal, stderr=subprocess.PIPE)
    finally:
        os.close(terminal)
        os.close(controller)
    assert r.returncode == 2 and b"--output" in r.stderr


def test_output_is_only_for_files(desk: Path) -> None:
    r = query(desk, "ledger.db", "--format", "table", "--output", "x.txt")
    assert r.returncode == 2 and not (desk / "x.txt").exists()


def test_the_report_as_xlsx_and_with_wareki(desk: Path, tmp_path: Path) -> None:
    args = ("report", "--ledger", "ledger.db", "--agreement", "agreement-a", "--period",
            "2026-Q3", "--no-verify")
    r = run(desk, *args)
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert "令和8年度 第3四半期 (2026-10-01〜2026-12-31)" in text and "2026年度 第3四半期" in text
    out = tmp_path / "report.xlsx"
    r = run(desk, *args, "--format", "xlsx", "--output", str(out))
    assert r.returncode == 0, r.stderr
    book = openpyxl.load_workbook(out)
    first = [row[0] for row in book.worksheets[0].values]
    assert any("令和8年度 第3四半期" in str(c) for c in first)
    transfers = [list(row) for row in book.worksheets[2].values]
    header = transfers.index(next(r for r in transfers if r[0] == "転送ID"))
    assert transfers[header + 1][0] == "t-1"
