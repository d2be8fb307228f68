"""The XLSX reader: cell values as text, the first sheet only, and a clean TableError for
encrypted, legacy, tampered, oversized or arbitrary bytes — never a crash."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.tables import Limits, Record, TableError
from policies.xlsxfile import xlsx_records


def workbook(*rows: tuple[object, ...], second: bool = False) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(list(row))
    if second:
        book.create_sheet("second").append(["NOT", "THIS"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def read(data: bytes, limits: Limits | None = None) -> list[Record]:
    return list(xlsx_records(io.BytesIO(data), limits or Limits()))


def rule_of(data: bytes, limits: Limits | None = None) -> str:
    with pytest.raises(TableError) as caught:
        read(data, limits)
    return caught.value.rule


def rewrite(data: bytes, member: str, change: object) -> bytes:
    """The workbook with one member's bytes passed through `change`."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            body = source.read(info)
            if info.filename == member:
                body = change(body)  # type: ignore[operator]
            target.writestr(info.filename, body)
    return out.getvalue()


def test_values_become_the_text_a_person_sees() -> None:
    data = workbook(
        ("氏名(英字)", "コード", "日付", "時刻", "真偽", "小数"),
        (
            "TEST TARO",
            131041,
            dt.datetime(2023, 3, 29),
            dt.datetime(2023, 3, 29, 10, 30),
            True,
            1.5,
        ),
        ("SAMPLE HANAKO", 131041.0, dt.date(2024, 1, 5), None, False, None),
    )
    got = read(data)
    assert got[0].cells == ("氏名(英字)", "コード", "日付", "時刻", "真偽", "小数")
    assert got[1].cells == (
        "TEST TARO",
        "131041",
        "2023-03-29",
        "2023-03-29T10:30:00",
        "TRUE",
        "1.5",
    )
    # Trailing empty cells are dropped; the caller pads to the dataset's width.
    assert got[2].cells == ("SAMPLE HANAKO", "131041", "2024-01-05", "", "FALSE")
    assert [r.row for r in got] == [1, 2, 3] and all(r.span is None for r in got)


def test_a_second_sheet_is_refused_not_ignored() -> None:
    # Data on an unchecked sheet would travel sealed past every content term.
    with pytest.raises(TableError) as err:
        read(workbook(("a", "b"), ("1", "2"), second=True))
    assert err.value.rule == "content.xlsx.sheets"


def test_gaps_keep_their_row_numbers() -> None:
    book = openpyxl.Workbook()
    book.active["A1"] = "h"
    book.active["A4"] = "x"
    out = io.BytesIO()
    book.save(out)
    got = read(out.getvalue())
    assert [(r.row, r.blank) for r in got] == [(1, False), (2, True), (3, True), (4, False)]


def test_a_password_protected_or_legacy_workbook_is_refused() -> None:
    ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    assert rule_of(ole2) == "content.xlsx.encrypted"


@pytest.mark.parametrize("data", [b"", b"name,code\r\n", b"PK", b"PK\x05\x06" + b"\x00" * 18])
def test_what_is_not_a_workbook_is_refused(data: bytes) -> None:
    assert rule_of(data) in {"content.xlsx.not-xlsx", "content.xlsx.corrupt"}


def test_a_zip_that_is_not_a_workbook_is_corrupt() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    assert rule_of(out.getvalue()) == "content.xlsx.corrupt"


def test_xml_with_a_doctype_is_refused() -> None:
    laughs = (
        b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>\n'
    )

    def inject(body: bytes) -> bytes:
        return laughs + (body.split(b"?>", 1)[1] if body.startswith(b"<?xml") else body)

    tampered = rewrite(workbook(("a",), ("b",)), "xl/worksheets/sheet1.xml", inject)
    assert rule_of(tampered) == "content.xlsx.doctype"


def test_utf16_xml_is_refused() -> None:
    tampered = rewrite(
        workbook(("a",)), "xl/workbook.xml", lambda body: body.decode("utf-8").encode("utf-16")
    )
    assert rule_of(tampered) == "content.xlsx.corrupt"


def test_an_encrypted_zip_member_is_refused() -> None:
    data = bytearray(workbook(("a",)))
    # Set the "encrypted" flag (bit 0) in every central directory entry.
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) != -1:
        data[start + 8] |= 0x01
        start += 4
    assert rule_of(bytes(data)) in {"content.xlsx.encrypted", "content.xlsx.corrupt"}


def test_zip_bomb_limits() -> None:
    data = workbook(("a", "b"), ("1", "2"))
    assert rule_of(data, Limits(max_xlsx_uncompressed=1000)) == "content.xlsx.too-large"
    assert rule_of(data, Limits(max_xlsx_members=3)) == "content.xlsx.too-large"
    # A 4 MiB run of spaces inside the sheet compresses about a thousandfold.
    bomb = rewrite(
        data,
        "xl/worksheets/sheet1.xml",
        lambda body: body.replace(b"<sheetData>", b"<sheetData>" + b" " * (4 << 20)),
    )
    assert rule_of(bomb) == "content.xlsx.too-large"


def test_row_limit() -> None:
    data = workbook(*[(str(i),) for i in range(10)])
    with pytest.raises(TableError) as caught:
        read(data, Limits(max_rows=5))
    assert caught.value.rule == "content.too-many-rows" and caught.value.row == 6


VALID = workbook(
    ("氏名(英字)", "在留カード番号"),
    ("TEST TARO", "AB12345678CD"),
    ("SAMPLE HANAKO", "CD87654321EF"),
)


def _consume(data: bytes) -> None:
    try:
        for record in xlsx_records(io.BytesIO(data), Limits(max_rows=50)):
            assert all(isinstance(c, str) for c in record.cells)
    except TableError as exc:
        assert exc.rule.startswith("content.")


@settings(max_examples=200)
@given(st.binary(max_size=2000))
def test_any_bytes_give_rows_or_a_clean_rejection(data: bytes) -> None:
    _consume(data)


@settings(max_examples=200)
@given(st.binary(max_size=500))
def test_any_bytes_behind_a_zip_signature_give_a_clean_rejection(tail: bytes) -> None:
    _consume(b"PK\x03\x04" + tail)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8
    ),
    st.integers(0, len(VALID)),
)
def test_a_workbook_with_bytes_flipped_or_cut_gives_a_clean_rejection(
    flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(VALID)
    for position, value in flips:
        data[position] = value
    _consume(bytes(data[: max(cut, 1)]))
    _consume(bytes(data))


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(
        [
            "xl/worksheets/sheet1.xml",
            "xl/workbook.xml",
            "xl/styles.xml",
            "[Content_Types].xml",
            "xl/_rels/workbook.xml.rels",
        ]
    ),
    st.binary(max_size=200),
)
def test_a_workbook_with_one_part_replaced_gives_a_clean_rejection(
    member: str, body: bytes
) -> None:
    _consume(rewrite(VALID, member, lambda _old: body))
