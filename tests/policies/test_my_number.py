"""My Number (個人番号) in every disguise: 4-4-4 groups split by any Unicode dash, hyphen, minus,
長音符 or space, with invisible characters, full-width digits, and through a real cp932 CSV —
while twelve digits with a wrong check digit (phone numbers, timestamps) stay allowed.
Synthetic numbers only."""

from __future__ import annotations

import datetime as dt
import io
import re
import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import checkdigits
from policies.checkdigits import contains_my_number, is_valid_my_number, my_number_separators
from policies.content import check_file
from tests.conftest import COLUMNS
from tests.policies.bundled import agreement

VALID = "123456789018"
WRONG = "123456789012"  # a wrong check digit: a phone number, a timestamp
SEPARATORS = sorted(my_number_separators())
NHI = agreement("isa-nhi-status-loss")
ON = dt.date(2026, 11, 20)
TARO = ["TEST TARO", "131041", "東京都新宿区サンプル町1-1", "1", "1990/04/01", "令和8年10月1日"]

# The separators the issue names, each of which got through before.
NAMED = [
    "\u2010",  # HYPHEN: what cp932 0x815D (全角ハイフン) decodes to
    "\u2011",
    "\u2012",
    "\u2013",
    "\u2014",
    "\u2015",
    "\u2212",  # MINUS SIGN
    "\ufe58",
    "\ufe63",
    "\uff0d",
    "\u30fc",  # 長音符
    "\uff70",  # half-width 長音符
    "\u2043",
    "\u02d7",
    "\t",
    " ",
    "\u3000",
    "\u00a0",
    "\u2009",
    "\u202f",
    "-",
]


def grouped(number: str, sep: str) -> str:
    return sep.join((number[:4], number[4:8], number[8:]))


@pytest.mark.parametrize("sep", NAMED, ids=[f"U+{ord(c):04X}" for c in NAMED])
def test_every_named_separator_is_seen(sep: str) -> None:
    assert contains_my_number(grouped(VALID, sep))
    assert contains_my_number(f"住所 {grouped(VALID, sep)} です")
    assert not contains_my_number(grouped(WRONG, sep))


@given(sep=st.sampled_from(SEPARATORS), before=st.sampled_from(["", "番号:", "x ", "電話 "]))
def test_any_separator_of_the_class_is_seen(sep: str, before: str) -> None:
    assert contains_my_number(before + grouped(VALID, sep))
    assert not contains_my_number(before + grouped(WRONG, sep))


@given(st.from_regex(r"[0-9]{11}", fullmatch=True), st.sampled_from(SEPARATORS))
def test_exactly_the_valid_check_digit_is_refused_whatever_the_separator(
    prefix: str, sep: str
) -> None:
    for digit in "0123456789":
        number = prefix + digit
        assert contains_my_number(grouped(number, sep)) == is_valid_my_number(number)


def test_the_class_is_every_dash_and_space_of_unicode() -> None:
    # The class is built from the planes that hold Pd and Zs; this checks all of Unicode.
    everything = {
        chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in ("Pd", "Zs")
    }
    assert everything <= my_number_separators()
    assert {"\t", "\u2212", "\u30fc", "\u2043", "\u02d7"} <= my_number_separators()


def test_the_scan_patterns_hold_exactly_their_characters() -> None:
    # The classes are written as ranges of consecutive code points, the invisible one split at
    # the end of the BMP (for speed); each must still hold exactly the characters it names.
    text = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    format_chars = {c for c in text if unicodedata.category(c) == "Cf"}
    assert set(checkdigits._invisible().findall(text)) == format_chars
    bmp, wide = checkdigits._invisible_parts()
    assert wide is not None
    assert set(bmp.findall(text)) | set(wide.findall(text)) == format_chars
    assert set(checkdigits._BEYOND_BMP.findall(text)) == {c for c in text if c > "\uffff"}
    separators = my_number_separators()
    assert set(re.findall(checkdigits._class_of(separators), text)) == separators
    assert set(re.findall(checkdigits._class_of(["a", "b", "c", "x", "\U0001f600"]), text)) == {
        "a", "b", "c", "x", "\U0001f600"
    }


@pytest.mark.parametrize(
    "invisible", ["\u200b", "\u00ad", "\u2060", "\ufeff", "\u200d", "\U000e0001", "\U0001bca0"]
)
def test_invisible_characters_do_not_hide_a_number(invisible: str) -> None:
    assert contains_my_number(VALID[:6] + invisible + VALID[6:])
    assert contains_my_number(grouped(VALID, invisible))  # groups joined by nothing visible
    assert not contains_my_number(WRONG[:6] + invisible + WRONG[6:])


@pytest.mark.parametrize(
    "text",
    [
        grouped(VALID, "\u2010") + "\u20100000",  # a 16-digit card number in 4-4-4-4 groups
        "0000\u2212" + grouped(VALID, "\u2212"),
        "03\u2010" + "1234\u20105678",  # a phone number
        "2026\u201012\u201003 12:00:00",  # a timestamp
        "1234\u20105678\u30fc9018",  # mixed separators are not the written form
    ],
)
def test_longer_or_other_groupings_do_not_fire(text: str) -> None:
    assert not contains_my_number(text)


def test_full_width_digits_with_any_dash() -> None:
    full = VALID.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert contains_my_number(grouped(full, "\u2212"))
    assert contains_my_number(grouped(full, "ー"))


def _nhi_csv(address: bytes) -> bytes:
    header = ",".join(COLUMNS).encode("cp932")
    row = [c.encode("cp932") for c in TARO]
    row[2] = address
    return header + b"\r\n" + b",".join(row) + b"\r\n"


def test_a_cp932_full_width_hyphen_is_decoded_and_refused_through_the_file_check() -> None:
    # 0x815D is cp932's 全角ハイフン; Python decodes it to U+2010 HYPHEN.
    assert b"\x81\x5d".decode("cp932") == "\u2010"
    dash = b"\x81\x5d"
    number = dash.join(VALID[i : i + 4].encode() for i in (0, 4, 8))
    data = _nhi_csv("東京都".encode("cp932") + number)
    verdict = check_file(io.BytesIO(data), NHI, NHI.flow("monthly"), ON)
    assert verdict.facts["encoding"] == "cp932"
    (reason,) = verdict.reasons
    assert reason.rule == "content.my-number"
    assert (reason.row, reason.column) == (2, COLUMNS[2])
    assert VALID not in reason.message and VALID[:4] not in reason.message


def test_a_cp932_number_with_a_wrong_check_digit_passes_through_the_file_check() -> None:
    dash = b"\x81\x5d"
    number = dash.join(WRONG[i : i + 4].encode() for i in (0, 4, 8))
    data = _nhi_csv("東京都".encode("cp932") + number)
    verdict = check_file(io.BytesIO(data), NHI, NHI.flow("monthly"), ON)
    assert verdict.accepted, verdict.reasons


@pytest.mark.parametrize("sep", ["\u2212", "\u30fc", "\u2010", "\t", "\u3000"])
def test_separators_in_a_utf8_file_are_refused_through_the_file_check(sep: str) -> None:
    row = list(TARO)
    row[2] = "東京都" + grouped(VALID, sep)
    data = (",".join(COLUMNS) + "\r\n" + ",".join(row) + "\r\n").encode("utf-8")
    verdict = check_file(io.BytesIO(data), NHI, NHI.flow("monthly"), ON)
    assert "content.my-number" in [r.rule for r in verdict.reasons]
