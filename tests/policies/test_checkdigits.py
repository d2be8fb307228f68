"""Known answers: local government code (地方公共団体コード) and My Number (個人番号) checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.checkdigits import (
    contains_my_number,
    is_valid_local_government_code,
    is_valid_my_number,
)

# Published codes (総務省 全国地方公共団体コード), also listed in LIBRARIES.md.
VALID_CODES = [
    ("131041", "新宿区"),
    ("131016", "千代田区"),
    ("141003", "横浜市"),
    ("011002", "札幌市"),
    ("130001", "東京都"),
    ("271004", "大阪市"),
    ("010006", "北海道"),
    ("011011", "札幌市中央区"),
    ("012025", "函館市"),
]

# Synthetic My Numbers: the stdnum known answer and its neighbours.
VALID_MY_NUMBER = "123456789018"
INVALID_MY_NUMBER = "123456789012"


@pytest.mark.parametrize(("code", "name"), VALID_CODES)
def test_published_local_government_codes_are_valid(code: str, name: str) -> None:
    assert is_valid_local_government_code(code), name


@pytest.mark.parametrize(("code", "name"), VALID_CODES)
def test_every_other_last_digit_is_invalid(code: str, name: str) -> None:
    for digit in "0123456789":
        if digit != code[-1]:
            assert not is_valid_local_government_code(code[:-1] + digit), (name, digit)


@pytest.mark.parametrize(
    "code",
    [
        "",
        "13104",  # the 5-digit form without check digit
        "1310410",
        "13104a",
        "ABCDEF",
        " 131041",
        "131041 ",
        "131-041",
        "１３１０４１",  # full-width: callers normalise first
        "١٣١٠٤١",  # Arabic-Indic digits are not code digits
    ],
)
def test_malformed_local_government_codes_are_invalid(code: str) -> None:
    assert not is_valid_local_government_code(code)


def test_check_digit_wraps_when_the_sum_is_a_multiple_of_eleven() -> None:
    # 13104: 6+15+4+0+8 = 33 ≡ 0 (mod 11) → (11 − 0) mod 10 = 1, the case a naive formula misses.
    assert is_valid_local_government_code("131041")
    assert not is_valid_local_government_code("131040")


def test_my_number_known_answers() -> None:
    assert is_valid_my_number(VALID_MY_NUMBER)
    assert not is_valid_my_number(INVALID_MY_NUMBER)


@pytest.mark.parametrize(
    "digits",
    [
        "",
        "12345678901",
        "1234567890180",
        "1234 5678 9018",
        "1234-5678-9018",
        "１２３４５６７８９０１８",
        "12345678901X",
    ],
)
def test_my_number_requires_exactly_twelve_ascii_digits(digits: str) -> None:
    assert not is_valid_my_number(digits)


@pytest.mark.parametrize(
    "text",
    [
        VALID_MY_NUMBER,
        f"個人番号:{VALID_MY_NUMBER}です",
        f"TARO YAMADA TEST {VALID_MY_NUMBER} SAMPLE",
        "１２３４５６７８９０１８",
        "個人番号１２３４５６７８９０１８",
        "1234 5678 9018",
        "1234-5678-9018",
        "１２３４－５６７８－９０１８",
        "1234\u30005678\u30009018",
        "no: 1234 5678 9018.",
        f"{INVALID_MY_NUMBER} and {VALID_MY_NUMBER}",
        f"x{VALID_MY_NUMBER}y",
    ],
)
def test_contains_my_number_finds_written_forms(text: str) -> None:
    assert contains_my_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "TARO YAMADA TEST",
        INVALID_MY_NUMBER,
        "1234 5678 9012",
        "1234567890180",  # 13 digits
        "0123456789018",  # a valid number inside a 13-digit run
        "9" + VALID_MY_NUMBER + "9",
        "1234 5678-9018",  # mixed separators are not the written form
        "1234  5678  9018",  # double spaces neither
        "1234 5678 9018 0000",  # part of a 16-digit grouped number
        "0000 1234 5678 9018",
        "1234-5678-9018-0000",
        "12345678901",
        "131041",
    ],
)
def test_contains_my_number_does_not_fire(text: str) -> None:
    assert not contains_my_number(text)


def test_contains_my_number_scans_long_cells() -> None:
    filler = "SAMPLE ALICE 2026-03-29 0312345678 " * 2000
    assert not contains_my_number(filler)
    assert contains_my_number(filler + VALID_MY_NUMBER)


@given(st.text())
def test_random_text_never_crashes(text: str) -> None:
    assert contains_my_number(text) in (True, False)


@given(st.from_regex(r"[0-9]{11}", fullmatch=True))
def test_exactly_one_check_digit_completes_eleven_digits(prefix: str) -> None:
    valid = [digit for digit in "0123456789" if is_valid_my_number(prefix + digit)]
    assert len(valid) == 1
    assert contains_my_number(f"SAMPLE {prefix}{valid[0]}")


@given(st.from_regex(r"[0-9]{5}", fullmatch=True))
def test_exactly_one_check_digit_completes_five_digits(prefix: str) -> None:
    valid = [digit for digit in "0123456789" if is_valid_local_government_code(prefix + digit)]
    assert len(valid) == 1


def _reference_plain_runs(text: str) -> bool:
    """Slow, obvious reference: split into maximal ASCII digit runs, test those of length 12."""
    runs, current = [], ""
    for char in text:
        if char in "0123456789":
            current += char
        else:
            runs.append(current)
            current = ""
    runs.append(current)
    return any(len(run) == 12 and is_valid_my_number(run) for run in runs)


@given(
    st.lists(
        st.one_of(
            st.from_regex(r"[0-9]{10,14}", fullmatch=True),
            st.sampled_from(["123456789018", "x", "号", "。", "."]),
        ),
        max_size=6,
    ).map("".join)
)
def test_plain_runs_agree_with_a_slow_reference(text: str) -> None:
    assert contains_my_number(text) == _reference_plain_runs(text)
