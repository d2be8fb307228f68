"""The CSV record reader: records and their exact byte spans, at any chunk boundary, and a
clean TableError or Undecodable for any byte string."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import policies.tables
from policies.tables import (
    Limits,
    Record,
    TableError,
    Undecodable,
    candidate_encodings,
    csv_records,
)


def records(data: bytes, encoding: str = "utf-8", limits: Limits | None = None) -> list[Record]:
    return list(csv_records(io.BytesIO(data), encoding, limits or Limits()))


def test_records_cells_and_spans() -> None:
    data = b'h1,h2\r\nTEST TARO,"a, b"\r\n"line\r\nbreak","say ""hi"""\r\n'
    got = records(data)
    assert [r.cells for r in got] == [
        ("h1", "h2"),
        ("TEST TARO", "a, b"),
        ("line\r\nbreak", 'say "hi"'),
    ]
    assert [r.row for r in got] == [1, 2, 3]
    assert b"".join(data[r.span[0] : r.span[1]] for r in got if r.span) == data


@pytest.mark.parametrize("ending", [b"\r\n", b"\n", b"\r"])
def test_every_line_ending_ends_a_record(ending: bytes) -> None:
    data = ending.join([b"a,b", b"c,d", b"e,f"])  # the last record has no ending
    got = records(data)
    assert [r.cells for r in got] == [("a", "b"), ("c", "d"), ("e", "f")]
    assert got[-1].span == (len(data) - 3, len(data))


def test_blank_records_are_marked_blank() -> None:
    got = records(b"a,b\r\n\r\n  \r\nc,d\r\n")
    assert [r.blank for r in got] == [False, True, True, False]
    assert [r.row for r in got] == [1, 2, 3, 4]


def test_empty_stream_has_no_records() -> None:
    assert records(b"") == []


def test_utf8_signature_is_removed_from_the_header_only() -> None:
    data = b"\xef\xbb\xbfa,b\r\n1,2\r\n"
    got = records(data, "utf-8-sig")
    assert got[0].cells == ("a", "b") and got[0].span == (0, 8)
    assert candidate_encodings(data[:3], ("cp932", "utf-8-sig")) == ["utf-8-sig"]
    assert candidate_encodings(data[:3], ("cp932",)) == []
    assert candidate_encodings(b"abc", ("cp932", "utf-8")) == ["utf-8", "cp932"]


def test_cp932_splits_exactly_even_with_trail_bytes_that_look_like_ascii() -> None:
    # 「ソ」 is 0x83 0x5C in cp932: its trail byte is a backslash, and 「表」 0x95 0x5C.
    text = '名前,住所\r\nソ表,"東京都,新宿区"\r\n'
    data = text.encode("cp932")
    got = records(data, "cp932")
    assert got[1].cells == ("ソ表", "東京都,新宿区")
    assert b"".join(data[r.span[0] : r.span[1]] for r in got if r.span) == data


def test_bytes_invalid_in_the_encoding_are_undecodable() -> None:
    with pytest.raises(Undecodable):
        records("氏名\r\n".encode("cp932"), "utf-8")


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b'a,"b"c\r\n', "content.csv-syntax"),  # text after a closing quote
        (b'a,b"c\r\nd,e\r\n', "content.csv-syntax"),  # a quote inside an unquoted field (RFC 4180)
        (b'a,"never closed\r\n', "content.csv-syntax"),
    ],
)
def test_malformed_csv_is_a_table_error(data: bytes, rule: str) -> None:
    with pytest.raises(TableError) as caught:
        records(data)
    assert caught.value.rule == rule and caught.value.row == 1


def test_an_unclosed_quote_is_cut_off_at_the_record_limit() -> None:
    data = b'a,"' + b"x" * 500
    with pytest.raises(TableError) as caught:
        records(data, limits=Limits(max_record_bytes=100))
    assert caught.value.rule == "content.row.too-long"


def test_too_many_rows() -> None:
    with pytest.raises(TableError) as caught:
        records(b"a\r\nb\r\nc\r\nd\r\n", limits=Limits(max_rows=3))
    assert caught.value.rule == "content.too-many-rows" and caught.value.row == 4


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7])
def test_chunk_boundaries_do_not_change_records(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b'h,i\r\n"x\r\ny","a""b"\r\nc,d\re,f\ng,h\r\n'
    expected = records(data)
    monkeypatch.setattr(policies.tables, "_CHUNK", chunk)
    assert records(data) == expected
    assert [r.cells for r in expected] == [
        ("h", "i"),
        ("x\r\ny", 'a"b'),
        ("c", "d"),
        ("e", "f"),
        ("g", "h"),
    ]


CELL = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
ROWS = st.lists(st.lists(CELL, min_size=1, max_size=4), min_size=1, max_size=6)


# QUOTE_MINIMAL with a "\n" terminator leaves a lone "\r" unquoted, which no reader can tell
# from a line ending; writers that agencies use quote it (CRLF), or quote everything.
WRITERS = st.sampled_from(
    [
        ("\r\n", csv.QUOTE_MINIMAL),
        ("\r\n", csv.QUOTE_ALL),
        ("\n", csv.QUOTE_ALL),
        ("\r", csv.QUOTE_ALL),
    ]
)


@settings(max_examples=200)
@given(rows=ROWS, writer=WRITERS, chunk=st.integers(1, 9))
def test_any_rows_written_by_the_csv_module_read_back_with_exact_spans(
    rows: list[list[str]], writer: tuple[str, int], chunk: int
) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=writer[0], quoting=writer[1]).writerows(rows)
    data = buffer.getvalue().encode("utf-8")
    original = policies.tables._CHUNK
    policies.tables._CHUNK = chunk
    try:
        got = records(data)
    finally:
        policies.tables._CHUNK = original
    assert [list(r.cells) for r in got] == rows
    assert b"".join(data[r.span[0] : r.span[1]] for r in got if r.span) == data


@settings(max_examples=300)
@given(data=st.binary(max_size=300), encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp932"]))
def test_any_bytes_give_records_or_a_clean_error(data: bytes, encoding: str) -> None:
    try:
        got = records(data, encoding, Limits(max_record_bytes=64, max_rows=20))
    except TableError as exc:
        assert exc.rule.startswith("content.")
        # Messages are built from fixed words; they never carry the bytes read.
        assert not any(
            chunk.decode("latin-1") in exc.message for chunk in [data[:8]] if len(chunk) >= 8
        )
    except Undecodable:
        pass
    else:
        assert all(isinstance(c, str) for r in got for c in r.cells)
