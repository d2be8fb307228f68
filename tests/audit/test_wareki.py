"""和暦 beside 西暦: era boundaries, 元年, fiscal years and the labels of report periods."""

from __future__ import annotations

import datetime as dt

import pytest

from audit.report import Period
from audit.wareki import era_of_day, era_of_fiscal_year, era_of_month, period_label

D = dt.date


@pytest.mark.parametrize(
    ("day", "text"),
    [
        (D(2019, 4, 30), "平成31年4月30日"),  # the last day of 平成
        (D(2019, 5, 1), "令和元年5月1日"),  # the first day of 令和
        (D(2020, 1, 1), "令和2年1月1日"),
        (D(2026, 10, 1), "令和8年10月1日"),
        (D(1989, 1, 7), "昭和64年1月7日"),  # the last day of 昭和
        (D(1989, 1, 8), "平成元年1月8日"),
        (D(1926, 12, 25), "昭和元年12月25日"),
    ],
)
def test_days(day: dt.date, text: str) -> None:
    assert era_of_day(day) == text


@pytest.mark.parametrize(
    ("year", "month", "text"),
    [(2019, 4, "平成31年4月"), (2019, 5, "令和元年5月"), (2026, 10, "令和8年10月")],
)
def test_months(year: int, month: int, text: str) -> None:
    assert era_of_month(year, month) == text


@pytest.mark.parametrize(
    ("fiscal_year", "text"),
    [
        (2026, "令和8年度"),
        (2020, "令和2年度"),
        (2019, "令和元年度"),  # April 2019 was 平成, but the year is named 令和元年度
        (2018, "平成30年度"),
        (1989, "平成元年度"),
        (1988, "昭和63年度"),
        (1927, "昭和2年度"),
    ],
)
def test_fiscal_years(fiscal_year: int, text: str) -> None:
    assert era_of_fiscal_year(fiscal_year) == text


@pytest.mark.parametrize(
    ("period", "label"),
    [
        ("2026-Q3", "令和8年度 第3四半期 (2026-10-01〜2026-12-31)"),
        ("2026-Q4", "令和8年度 第4四半期 (2027-01-01〜2027-03-31)"),
        ("2026-Q1", "令和8年度 第1四半期 (2026-04-01〜2026-06-30)"),
        ("2026", "令和8年度 (2026-04-01〜2027-03-31)"),
        ("2019", "令和元年度 (2019-04-01〜2020-03-31)"),
        ("2018-Q4", "平成30年度 第4四半期 (2019-01-01〜2019-03-31)"),
        ("2019-04", "平成31年4月 (2019-04-01〜2019-04-30)"),
        ("2019-05", "令和元年5月 (2019-05-01〜2019-05-31)"),
        ("2026-10", "令和8年10月 (2026-10-01〜2026-10-31)"),
        ("2024-02", "令和6年2月 (2024-02-01〜2024-02-29)"),
    ],
)
def test_report_periods(period: str, label: str) -> None:
    p = Period.parse(period)
    assert period_label(p.start, p.end) == label == p.wareki


def test_other_spans_show_both_days() -> None:
    assert period_label(D(2019, 4, 15), D(2019, 5, 16)) == (
        "平成31年4月15日〜令和元年5月15日 (2019-04-15〜2019-05-15)"
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: era_of_day(D(1926, 12, 24)),
        lambda: era_of_fiscal_year(1926),
        lambda: period_label(D(2026, 4, 1), D(2026, 4, 1)),
    ],
)
def test_out_of_range_is_refused(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


def test_a_period_before_the_eras_keeps_its_western_label() -> None:
    assert Period.parse("1900-Q1").wareki == "1900年度 第1四半期 (1900-04-01〜1900-06-30)"
