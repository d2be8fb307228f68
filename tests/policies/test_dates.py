"""Dates in ISO, slashed and Japanese era (和暦) forms, and the strictness of era boundaries."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.dates import ERAS, Era, parse_date

ACCEPTED = [
    ("2023-03-29", date(2023, 3, 29)),
    ("2023/03/29", date(2023, 3, 29)),
    ("2023/3/29", date(2023, 3, 29)),
    ("2023/3/9", date(2023, 3, 9)),
    ("令和5年3月29日", date(2023, 3, 29)),
    ("令和05年03月29日", date(2023, 3, 29)),
    ("令和元年5月1日", date(2019, 5, 1)),
    ("平成31年4月30日", date(2019, 4, 30)),
    ("R5.3.29", date(2023, 3, 29)),
    ("R05.03.29", date(2023, 3, 29)),
    ("R5/3/29", date(2023, 3, 29)),
    ("H31.4.30", date(2019, 4, 30)),
    ("S64.1.7", date(1989, 1, 7)),
    ("H1.1.8", date(1989, 1, 8)),
    ("T15.12.24", date(1926, 12, 24)),
    ("S1.12.25", date(1926, 12, 25)),
    ("M45.7.29", date(1912, 7, 29)),
    ("T1.7.30", date(1912, 7, 30)),
    ("大正元年7月30日", date(1912, 7, 30)),
    ("明治6年1月1日", date(1873, 1, 1)),
    ("R2.2.29", date(2020, 2, 29)),  # leap day
    # YYYYMMDD, as government CSV exports write it; full-width digits fold (NFKC).
    ("20230329", date(2023, 3, 29)),
    ("18730101", date(1873, 1, 1)),
    ("21991231", date(2199, 12, 31)),
    ("２０２３０３２９", date(2023, 3, 29)),
    (" 20200229 ", date(2020, 2, 29)),
    # Full-width digits, letters and separators (NFKC), and surrounding whitespace.
    ("令和５年３月２９日", date(2023, 3, 29)),
    ("Ｒ５．３．２９", date(2023, 3, 29)),
    ("２０２３－０３－２９", date(2023, 3, 29)),
    ("２０２３／３／２９", date(2023, 3, 29)),
    ("  2023-03-29\t", date(2023, 3, 29)),
    ("\u3000令和5年3月29日\u3000", date(2023, 3, 29)),
    ("㋿5年3月29日", date(2023, 3, 29)),  # the one-character era square folds to 令和
    ("㍻31年4月30日", date(2019, 4, 30)),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_accepted_forms(text: str, expected: date) -> None:
    assert parse_date(text) == expected


ERA_BOUNDARIES = [
    ("平成31年4月30日", date(2019, 4, 30)),
    ("令和元年5月1日", date(2019, 5, 1)),
    ("令和1年5月1日", date(2019, 5, 1)),
    ("昭和64年1月7日", date(1989, 1, 7)),
    ("平成元年1月8日", date(1989, 1, 8)),
    ("大正15年12月24日", date(1926, 12, 24)),
    ("昭和元年12月25日", date(1926, 12, 25)),
    ("明治45年7月29日", date(1912, 7, 29)),
    ("大正元年7月30日", date(1912, 7, 30)),
]


@pytest.mark.parametrize(("text", "expected"), ERA_BOUNDARIES)
def test_last_and_first_days_of_eras(text: str, expected: date) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "令和1年4月30日",  # before 令和 began
        "令和元年4月30日",
        "R1.4.30",
        "平成31年5月1日",  # after 平成 ended
        "H31.5.1",
        "H32.1.1",
        "昭和64年1月8日",
        "S65.1.1",
        "平成元年1月7日",
        "大正15年12月25日",
        "昭和元年12月24日",
        "明治45年7月30日",
        "大正元年7月29日",
        "明治5年12月2日",  # lunisolar 明治 dates are not converted
        "M1.1.1",
        "令和0年5月1日",
        "R0.5.1",
    ],
)
def test_dates_outside_their_era_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_date(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "2023-02-30",
        "2023-02-29",  # not a leap year
        "令和5年2月30日",
        "R5.2.30",
        "2023-13-01",
        "2023-00-10",
        "0000-01-01",
        "2023-3-29",  # ISO needs two-digit month and day
        "23-03-29",
        "2023.03.29",
        "2023年3月29日",  # 西暦 with 年月日 is not one of the agreed forms
        "R5.3/29",  # mixed separators
        "R5-3-29",
        "r5.3.29",
        "X5.3.29",
        "令和5年3月29",
        "令和五年三月二十九日",
        "R123.1.1",
        "2023-03-29T00:00:00",
        "2023-03-29 extra",
        "٢٠٢٣-٠٣-٢٩",  # Arabic-Indic digits
        "TARO YAMADA TEST",
        "2023-03-29" * 10,
        # 8 digits are a date only when they name a plausible calendar day.
        "20230230",  # no such day
        "20231301",
        "20230000",
        "12345678",  # year 1234: a number, not a date
        "18721231",  # before the Gregorian calendar was adopted (1873-01-01)
        "22000101",  # beyond any plausible record
        "00000000",
        "2023032",  # 7 digits
        "202303290",  # 9 digits
        "123456789018",  # a My Number is not a date
    ],
)
def test_garbage_is_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_date(text)


def _known_messages() -> set[str]:
    """Every message parse_date can raise, collected from inputs that reach each branch."""
    probes = ["", "2023-02-30", "R0.1.1", "M5.1.1", "T1.7.29", "M45.7.30", "T15.12.25"]
    probes += ["S1.12.24", "S64.1.8", "H1.1.7", "H31.5.1", "R1.4.30", "12345678"]
    messages = set()
    for probe in probes:
        with pytest.raises(ValueError) as caught:
            parse_date(probe)
        messages.add(str(caught.value))
    return messages


KNOWN_MESSAGES = _known_messages()

NEAR_MISS = st.text(
    alphabet=st.sampled_from(
        list("0123456789０１２-/.．／年月日元令和平成昭和大正明治RHSTMr \u3000㋿")
    ),
    max_size=20,
)


@given(st.one_of(st.text(), NEAR_MISS))
def test_any_text_gives_a_date_or_a_value_error_that_does_not_echo_it(text: str) -> None:
    try:
        result = parse_date(text)
    except ValueError as error:
        # Messages come from a fixed set, so they cannot carry any part of the input.
        assert str(error) in KNOWN_MESSAGES
    else:
        assert isinstance(result, date)


# --- round trip: every accepted form of a random date parses back --------------------------------

_FULL_WIDTH = str.maketrans("0123456789MTSHR./-", "０１２３４５６７８９ＭＴＳＨＲ．／－")


def _era_of(day: date) -> Era:
    for era in ERAS:
        if era.first_day <= day and (era.last_day is None or day <= era.last_day):
            return era
    raise AssertionError("no era")


def _kanji(day: date, *, gannen: bool) -> str:
    era = _era_of(day)
    year = day.year - era.offset
    year_text = "元" if gannen and year == 1 else str(year)
    return f"{era.name}{year_text}年{day.month}月{day.day}日"


def _short(day: date, sep: str, *, padded: bool) -> str:
    era = _era_of(day)
    year = day.year - era.offset
    if padded:
        return f"{era.initial}{year:02d}{sep}{day.month:02d}{sep}{day.day:02d}"
    return f"{era.initial}{year}{sep}{day.month}{sep}{day.day}"


GREGORIAN_FORMS: list[Callable[[date], str]] = [
    lambda d: d.isoformat(),
    lambda d: f"{d.year:04d}/{d.month:02d}/{d.day:02d}",
    lambda d: f"{d.year:04d}/{d.month}/{d.day}",
]
ERA_FORMS: list[Callable[[date], str]] = [
    lambda d: _kanji(d, gannen=True),
    lambda d: _kanji(d, gannen=False),
    lambda d: _short(d, ".", padded=False),
    lambda d: _short(d, ".", padded=True),
    lambda d: _short(d, "/", padded=False),
    lambda d: _short(d, "/", padded=True),
]


@given(st.dates())
def test_gregorian_forms_round_trip(day: date) -> None:
    for form in GREGORIAN_FORMS:
        text = form(day)
        assert parse_date(text) == day, text
        assert parse_date(text.translate(_FULL_WIDTH)) == day, text


@given(st.dates(min_value=date(1873, 1, 1), max_value=date(2199, 12, 31)))
def test_compact_form_round_trips_in_its_year_range(day: date) -> None:
    text = f"{day.year:04d}{day.month:02d}{day.day:02d}"
    assert parse_date(text) == day
    assert parse_date(text.translate(_FULL_WIDTH)) == day


@given(st.integers(min_value=0, max_value=99_999_999))
def test_eight_digit_numbers_outside_the_year_range_are_never_dates(number: int) -> None:
    text = f"{number:08d}"
    if 1873 <= number // 10_000 <= 2199:
        return  # inside the range: a date when the month and day exist (tested above)
    with pytest.raises(ValueError):
        parse_date(text)


# 明治6年 (the first Gregorian 明治 year) to 令和99年 (two-digit era years).
@given(st.dates(min_value=date(1873, 1, 1), max_value=date(2117, 12, 31)))
def test_era_forms_round_trip(day: date) -> None:
    for form in ERA_FORMS:
        text = form(day)
        assert parse_date(text) == day, text
        assert parse_date(text.translate(_FULL_WIDTH)) == day, text


def test_era_table_is_contiguous() -> None:
    for earlier, later in itertools.pairwise(ERAS):
        assert earlier.last_day is not None
        assert (later.first_day - earlier.last_day).days == 1
        # The first day of each era is its year 1 (元年).
        assert later.first_day.year - later.offset == 1
