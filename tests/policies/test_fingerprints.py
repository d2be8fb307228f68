"""Canonical row keys and keyed fingerprints: a copy of the same rows gives the same
fingerprints whatever its column order, whitespace, width forms, date forms, encoding or format
(CSV cp932 / UTF-8 / XLSX); unrelated rows with the same columns, or another key, give others."""

from __future__ import annotations

import datetime as dt
import io
import random
from collections.abc import Sequence

import openpyxl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from policies.fingerprints import (
    FINGERPRINT_BYTES,
    Fingerprinter,
    RowKeys,
    canonical_column,
    canonical_value,
    fingerprint,
    key_check,
    read_table,
)
from policies.tables import TableError
from tests.conftest import COLUMNS

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
HEADER = COLUMNS
CODES = ("131041", "141003", "011002", "271004")  # real municipality codes, valid check digits

Person = tuple[str, str, str, str, dt.date, dt.date]  # the columns of HEADER, dates as dates


# --- writing one set of rows in many forms ------------------------------------------------------


def wareki(day: dt.date) -> str:
    for name, first, offset in (
        ("令和", dt.date(2019, 5, 1), 2018),
        ("平成", dt.date(1989, 1, 8), 1988),
        ("昭和", dt.date(1926, 12, 25), 1925),
    ):
        if day >= first:
            return f"{name}{day.year - offset}年{day.month}月{day.day}日"
    raise AssertionError("no era for the day")


def full_width(text: str) -> str:
    """ASCII as 全角 forms, and the katakana of the synthetic addresses as 半角 forms."""
    half = str.maketrans(
        {"テ": "ﾃ", "ス": "ｽ", "ト": "ﾄ", "サ": "ｻ", "ン": "ﾝ", "プ": "ﾌﾟ", "ル": "ﾙ"}
    )
    return "".join(
        "\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text
    ).translate(half)


def cells_plain(p: Person) -> list[str]:
    return [p[0], p[1], p[2], p[3], p[4].isoformat(), p[5].isoformat()]


def cells_messy(p: Person) -> list[str]:
    """The same values as a person in another office might type them."""
    sex = {"1": "男", "2": "女"}.get(p[3], p[3])
    return [
        "  " + full_width(p[0].lower()) + " ",
        full_width(p[1]),
        " " + full_width(p[2]).replace("-", "−") + "\u3000",
        sex,
        p[4].strftime("%Y/%m/%d").replace("/0", "/"),
        wareki(p[5]),
    ]


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[str]], encoding: str) -> bytes:
    lines = [",".join(f'"{c}"' for c in r) for r in [header, *rows]]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def xlsx_bytes(header: Sequence[str], rows: Sequence[Sequence[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def xlsx_values(p: Person) -> list[object]:
    """As Excel holds them: codes typed as numbers (leading zero lost), dates as dates."""
    return [
        p[0],
        int(p[1]),
        p[2],
        int(p[3]),
        dt.datetime.combine(p[4], dt.time()),
        dt.datetime.combine(p[5], dt.time()),
    ]


def reorder(
    order: Sequence[int], header: Sequence[str], rows: list[list[object]]
) -> tuple[list[str], list[list[object]]]:
    return [header[i] for i in order], [[r[i] for i in order] for r in rows]


def fingerprints(data: bytes, fmt: str, key: bytes = KEY) -> list[frozenset[bytes]]:
    """Each row's set of fingerprints, in file order."""
    table = read_table(io.BytesIO(data), fmt)
    keys = RowKeys(table.header)
    return [frozenset(fingerprint(key, k.text) for k in keys.keys(r.cells)) for r in table.rows]


names = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=8).map(
    lambda s: f"TEST {s}"
)
people = st.tuples(
    names,
    st.sampled_from(CODES),
    st.integers(1, 99).map(lambda n: f"東京都新宿区テストサンプル町{n}-1"),
    st.sampled_from(("1", "2")),
    st.dates(dt.date(1930, 1, 1), dt.date(2010, 12, 31)),
    st.dates(dt.date(2022, 4, 1), dt.date(2026, 12, 31)),
)


# --- the same rows in every form -----------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(people, min_size=1, max_size=6), st.permutations(range(6)), st.randoms())
def test_copies_in_any_form_have_the_same_fingerprints(
    rows: list[Person], order: list[int], rnd: random.Random
) -> None:
    original = fingerprints(csv_bytes(HEADER, [cells_plain(p) for p in rows], "cp932"), "csv")
    assert all(original)  # every synthetic row is worth fingerprinting

    header, messy = reorder(order, HEADER, [list(cells_messy(p)) for p in rows])
    messy_header = [" " + full_width(h) for h in header]  # （英字） and padded names
    variants = {
        "cp932, reordered, typed by hand": csv_bytes(
            messy_header, [[str(c) for c in r] for r in messy], "cp932"
        ),
        "utf-8 with a signature": csv_bytes(HEADER, [cells_plain(p) for p in rows], "utf-8-sig"),
        "utf-8, reordered, typed by hand": csv_bytes(
            header, [[str(c) for c in r] for r in messy], "utf-8"
        ),
    }
    for name, data in variants.items():
        assert fingerprints(data, "csv") == original, name

    xheader, xrows = reorder(order, HEADER, [xlsx_values(p) for p in rows])
    assert fingerprints(xlsx_bytes(xheader, xrows), "xlsx") == original
    # Excel text cells (a sheet pasted as text) read alike.
    assert fingerprints(xlsx_bytes(HEADER, [cells_plain(p) for p in rows]), "xlsx") == original

    shuffled = list(rows)
    rnd.shuffle(shuffled)
    again = fingerprints(csv_bytes(HEADER, [cells_plain(p) for p in shuffled], "cp932"), "csv")
    assert sorted(map(sorted, again)) == sorted(map(sorted, original))


@settings(max_examples=60, deadline=None)
@given(people, people)
def test_unrelated_rows_with_the_same_columns_share_no_fingerprint(a: Person, b: Person) -> None:
    assume(canonical_value(a[0]) != canonical_value(b[0]))  # two different people
    got = fingerprints(csv_bytes(HEADER, [cells_plain(a), cells_plain(b)], "utf-8"), "csv")
    assert not got[0] & got[1]


@settings(max_examples=30, deadline=None)
@given(people)
def test_the_key_matters(p: Person) -> None:
    data = csv_bytes(HEADER, [cells_plain(p)], "utf-8")
    mine, theirs = fingerprints(data, "csv"), fingerprints(data, "csv", OTHER_KEY)
    assert mine[0] and theirs[0] and not mine[0] & theirs[0]


@settings(max_examples=30, deadline=None)
@given(
    people,
    st.sampled_from(("生年月日", "birth date", "生年月日(西暦)")),
    st.sampled_from(("氏名", "Name", "氏名(英字)")),
)
def test_a_sheet_with_only_name_and_birth_date_matches_by_identity(
    p: Person, birth_heading: str, name_heading: str
) -> None:
    whole = fingerprints(csv_bytes(HEADER, [cells_plain(p)], "cp932"), "csv")[0]
    subset = xlsx_bytes(
        [birth_heading, name_heading], [[dt.datetime.combine(p[4], dt.time()), p[0].lower()]]
    )
    assert fingerprints(subset, "xlsx")[0] & whole


@settings(max_examples=30, deadline=None)
@given(people, st.dates(dt.date(1930, 1, 1), dt.date(2010, 12, 31)))
def test_the_same_name_with_another_birth_date_does_not_match(p: Person, other: dt.date) -> None:
    assume(other != p[4])
    whole = fingerprints(csv_bytes(HEADER, [cells_plain(p)], "cp932"), "csv")[0]
    subset = csv_bytes(["氏名(英字)", "生年月日"], [[p[0], other.isoformat()]], "utf-8")
    assert not fingerprints(subset, "csv")[0] & whole


# --- the canonical form -------------------------------------------------------------------------


def test_known_answer() -> None:
    # Pinned: a change to the canonical form or the HMAC input must bump the context version,
    # or every stored fingerprint would silently stop matching.
    keys = RowKeys(HEADER).keys(
        ("TEST TARO", "131041", "東京都新宿区サンプル町1-1", "1", "1990/04/01", "令和8年10月1日")
    )
    assert [k.kind for k in keys] == ["row", "identity"]
    assert keys[0].text == (
        '["row",[["住居地","東京都新宿区サンプル町1-1"],["住居地(地方公共団体コード)","131041"],'
        '["在留資格変更年月日","2026-10-01"],["性別","1"],["氏名(英字)","test taro"],'
        '["生年月日","1990-04-01"]]]'
    )
    assert keys[1].text == '["identity",[["name","test taro"],["birth","1990-04-01"]]]'
    assert fingerprint(KEY, keys[1].text).hex() == KNOWN_IDENTITY_FINGERPRINT
    assert len(fingerprint(KEY, keys[0].text)) == FINGERPRINT_BYTES


# Computed independently: printf 'tachiai/onward-row/v1\x00TEXT' | openssl dgst -sha256 -mac HMAC
KNOWN_IDENTITY_FINGERPRINT = "91af075bf3d768df5e57bbd84504e144"


@pytest.mark.parametrize(
    ("cell", "role", "want"),
    [
        ("  ＴＥＳＴ　 ＴＡＲＯ ", None, "test taro"),
        ("1990/4/1", None, "1990-04-01"),
        ("19900401", None, "1990-04-01"),
        ("平成2年4月1日", None, "1990-04-01"),
        ("H2.4.1", None, "1990-04-01"),
        ("１９９０－０４－０１", None, "1990-04-01"),
        ("011002", None, "11002"),
        ("0", None, "0"),
        ("ﾃｽﾄ町1−1", None, "テスト町1-1"),
        ("サンプル町ー", None, "サンプル町ー"),  # 長音符 is a letter, not a dash
        ("男", "sex", "1"),
        ("女", "sex", "2"),
        ("女", None, "女"),  # only a sex column reads 女 as a code
        ("SMITH", None, "smith"),  # S is an era initial, but this is no date
        ("R5.13.1", None, "r5.13.1"),  # no such day: text
        ("", None, ""),
        (" \u3000 ", None, ""),
    ],
)
def test_canonical_values(cell: str, role: str | None, want: str) -> None:
    assert canonical_value(cell, role) == want


def test_column_names_compare_after_nfkc_case_and_whitespace() -> None:
    assert canonical_column(" 氏名（英字） ") == canonical_column("氏名(英字)")
    assert canonical_column("Birth Date") == "birthdate"


def test_plain_rows_are_not_fingerprinted() -> None:
    keys = RowKeys(HEADER)
    assert keys.keys(("", "", "", "", "", "")) == ()
    assert keys.keys(("", "", "", "1", "", "")) == ()  # a lone flag would match every other
    assert keys.keys(("", "", "", "1", "", "2026-10-01")) != ()
    assert [k.kind for k in keys.keys(("T", "", "", "", "1990-04-01", ""))] == ["row"]


def test_cells_beyond_the_header_and_missing_trailing_cells() -> None:
    keys = RowKeys(("氏名", "生年月日", "備考"))
    base = keys.keys(("TEST TARO", "1990-04-01", ""))
    assert keys.keys(("TEST TARO", "1990-04-01")) == base  # XLSX drops empty trailing cells
    assert keys.keys(("TEST TARO", "1990-04-01", "", "stray")) == base


@settings(max_examples=200)
@given(st.binary(min_size=16, max_size=200), st.text())
def test_the_fast_fingerprinter_is_the_hmac(key: bytes, text: str) -> None:
    # Keys longer than SHA-256's block are hashed first (RFC 2104 §2), as hmac does.
    assert Fingerprinter(key)(text) == fingerprint(key, text)


def test_fingerprint_refuses_a_short_key() -> None:
    for short in (b"", bytes(15)):
        with pytest.raises(ValueError, match="at least"):
            fingerprint(short, "x")
        with pytest.raises(ValueError, match="at least"):
            Fingerprinter(short)
    assert key_check(KEY) != key_check(OTHER_KEY)
    assert KEY.hex() not in key_check(KEY)


# --- reading ------------------------------------------------------------------------------------


def test_unreadable_input_is_a_table_error_naming_no_content() -> None:
    secret = "TEST TARO"
    undecodable = "氏名\r\nTEST TARO\r\n".encode() + b"\xff\xfe\x81"
    for data, fmt, rule in [
        (undecodable, "csv", "content.encoding"),
        (b"PK\x03\x04" + secret.encode() * 10, "xlsx", "content.xlsx.corrupt"),
        (secret.encode(), "xlsx", "content.xlsx.not-xlsx"),
        (b"", "csv", "content.empty"),
    ]:
        with pytest.raises(TableError) as caught:
            read_table(io.BytesIO(data), fmt)
        assert caught.value.rule == rule
        assert secret not in caught.value.message


def test_unknown_format_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        read_table(io.BytesIO(b"a,b\r\n"), "ods")


def test_encoding_is_chosen_for_the_whole_file() -> None:
    # ASCII first, cp932 far below: UTF-8 would read the first rows and fail late.
    rows = [["TEST TARO", "1990-04-01"]] * 5000 + [["テスト", "1990-04-01"]]
    table = read_table(io.BytesIO(csv_bytes(("氏名", "生年月日"), rows, "cp932")), "csv")
    assert table.encoding == "cp932"
    assert sum(1 for _ in table.rows) == 5001
