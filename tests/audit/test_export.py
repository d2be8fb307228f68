"""Excel-ready exports: CSV with BOM and CRLF (or cp932), refusals by place, xlsx by openpyxl."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pytest

from audit.export import Sheet, UnencodableCell, emit, write_csv, write_xlsx

HEADER = ("seq", "氏名", "data")
ROWS = [
    ["1", "佐藤 花子", '{"file_name": "申請書.csv", "note": "a, \\"quoted\\" value"}'],
    ["2", "髙橋 ①", "two\nlines"],  # 髙 and ① are in cp932, not in JIS X 0208
    ["3", "", "=1+1"],
]
SYNTHETIC = "テスト🙂値"  # an obviously synthetic cell cp932 cannot hold (the emoji)


def read_back(data: bytes, encoding: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(encoding), newline="")))


def test_utf8_csv_has_a_bom_crlf_and_the_same_cells() -> None:
    out = io.BytesIO()
    assert write_csv(out, HEADER, ROWS) == 0
    data = out.getvalue()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.endswith(b"\r\n") and data.count(b"\r\n") == 4
    assert b"\n" not in data.replace(b"\r\n", b"").replace(b"two\nlines", b"")
    assert read_back(data, "utf-8-sig") == [list(HEADER), *ROWS]


def test_cp932_csv_decodes_to_the_same_cells() -> None:
    out = io.BytesIO()
    write_csv(out, HEADER, ROWS[:2], encoding="cp932")
    data = out.getvalue()
    assert not data.startswith(b"\xef\xbb\xbf") and data.endswith(b"\r\n")
    assert read_back(data, "cp932") == [list(HEADER), *ROWS[:2]]


def test_cp932_writes_jis_variants_as_windows_does() -> None:
    # Six characters (〜 − ‖ ¢ £ ¬) have a Windows twin in cp932: written as the twin, they
    # read back as ～ － ∥ ￠ ￡ ￢, which is what Excel on Windows shows for them anyway.
    out = io.BytesIO()
    write_csv(out, ("期間",), [["2026-10-01〜2026-12-31 −1"]], encoding="cp932")
    assert read_back(out.getvalue(), "cp932")[1] == ["2026-10-01～2026-12-31 －1"]


def test_cp932_refuses_a_cell_by_row_and_column_never_the_value() -> None:
    with pytest.raises(UnencodableCell) as caught:
        write_csv(io.BytesIO(), HEADER, [ROWS[0], ["2", SYNTHETIC, "x"]], encoding="cp932")
    assert (caught.value.row, caught.value.column) == (3, "氏名")  # the header is row 1
    assert "row 3" in str(caught.value) and "氏名" in str(caught.value)
    assert SYNTHETIC not in str(caught.value) and "🙂" not in str(caught.value)


def test_cp932_with_replace_counts_what_it_replaced() -> None:
    out = io.BytesIO()
    rows = [["1", SYNTHETIC, "🙂🙂"]]
    assert write_csv(out, HEADER, rows, encoding="cp932", replace=True) == 3
    assert read_back(out.getvalue(), "cp932")[1] == ["1", "テスト?値", "??"]


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(ValueError):
        write_csv(io.BytesIO(), HEADER, ROWS, encoding="latin-1")


def test_xlsx_opens_with_the_same_cells_and_no_formulas(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    sheets = [
        Sheet("events", HEADER, ROWS),
        Sheet("2. 提供の記録 (transfers): 送信者と立会者 [long]", ("a",), [["x"]], ["note"]),
        Sheet("events", (), [], ["same name again"]),
    ]
    with path.open("wb") as out:
        write_xlsx(out, sheets)
    book = openpyxl.load_workbook(path)
    names = book.sheetnames
    assert names[0] == "events" and names[2] == "events (2)"
    assert len(names[1]) <= 31 and ":" not in names[1] and "[" not in names[1]
    first = [[c if c is not None else "" for c in row] for row in book["events"].values]
    assert first == [list(HEADER), *ROWS]
    assert book["events"]["C4"].data_type == "s"  # "=1+1" stays text, not a formula
    second = [list(row) for row in book[names[1]].values]
    assert second == [["note"], [None], ["a"], ["x"]]


def test_emit_leaves_nothing_when_the_export_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(b"previous")
    stdout = io.BytesIO()

    def refused(out: io.BufferedIOBase) -> None:
        write_csv(out, HEADER, [ROWS[0], ["2", SYNTHETIC, ""]], encoding="cp932")

    for output in (target, None):
        with pytest.raises(UnencodableCell):
            emit(refused, output, stdout)
    assert target.read_bytes() == b"previous" and stdout.getvalue() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
    emit(lambda out: write_csv(out, HEADER, ROWS), target, stdout)
    assert read_back(target.read_bytes(), "utf-8-sig")[1:] == ROWS
