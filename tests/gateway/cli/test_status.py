"""`tachiai status` on the demo, and the human tables: headers, sizes, times, reasons, and
columns that stay aligned with Japanese (East Asian wide) text."""

from __future__ import annotations

import pytest
from wcwidth import wcswidth

from gateway.cli.table import render, size, transfer_row
from tests.conftest import GOOD_ROWS, Demo, csv_bytes


def test_wide_characters_keep_the_columns_aligned() -> None:
    text = render(["id", "file", "sender"], [["t-1", "佐藤の提供ファイル.csv", "sato"],
                                            ["t-22", "a.csv", "鈴木"]])
    lines = text.splitlines()
    assert lines[0].startswith("id  ") and set(lines[1]) <= {"-", " "}
    column = {wcswidth(line[: line.index(tail)]) for line, tail in
              zip(lines[2:], ("sato", "鈴木"), strict=True)}
    assert len(column) == 1  # the third column starts at the same display column
    assert render(["a"], [["x\x1b[2Jy"]]).splitlines()[2] == "x\\x1b[2Jy"  # no escape codes


def test_sizes_and_reasons_for_people() -> None:
    assert (size(None), size(950), size(12_345), size(4_000_000)) == (
        "-", "950 B", "12.3 kB", "4.0 MB")
    row = transfer_row({"id": "t-1", "state": "rejected", "agreement": "a", "flow": "f",
                        "file_name": "x.csv", "size": 10, "sender": "sato", "approvals": [],
                        "updated": "2026-12-03T22:10:05+09:00", "reasons": [
                            {"rule": "content.check-digit", "row": 2, "column": "住居地",
                             "message": "…"}, {"rule": "other", "message": "…"}]})
    assert row[-2:] == ["2026-12-03 22:10", "content.check-digit at row 2 column 住居地 (+1)"]


@pytest.mark.slow
def test_status_shows_the_waiting_transfer_and_its_witnesses(demo: Demo) -> None:
    demo.start()
    demo.drop("status-change-2026-10.csv", csv_bytes(GOOD_ROWS))
    [waiting] = demo.wait_state("awaiting_approval")
    data = demo.json("status")
    [entry] = data["awaiting_approval"]
    assert entry["id"] == waiting["id"] and entry["witnesses"] == ["suzuki", "tanaka"]
    assert entry["required"] == 1 and entry["approvals"] == [] and entry["sender"] == "sato"
    assert data["failed"] == [] and data["holdings"] == [] and data["late"] == []
    assert all(not c["failing"] for c in data["checkpoints"])
    human = demo.cli("status", check=True).stdout
    assert "Awaiting approval (承認待ち): 1" in human
    line = next(x for x in human.splitlines() if waiting["id"] in x)
    assert "suzuki, tanaka" in line and "0/1" in line
    assert f"tachiai approve {waiting['id']} --key KEY" in human
    listed = demo.cli("transfers", "list", check=True).stdout.splitlines()
    assert listed[0].split()[:4] == ["id", "state", "agreement/flow", "file"]
    assert waiting["id"] in listed[2] and "awaiting_approval" in listed[2]
