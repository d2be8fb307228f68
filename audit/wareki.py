"""和暦 (Japanese era years) beside 西暦, for the periods of reports: 令和8年度 第3四半期.

Pure functions of dates. Fiscal years (年度) run April to March and take the era of their first
calendar year, as the government names them (2019年度 = 令和元年度); a single day or month takes
the era in force on its first day. Eras before 昭和 are not named: they raise ValueError.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

#: Era names and their first days (元号法; 令和: 平成31年政令第143号), newest first.
ERAS: Final = (
    ("令和", dt.date(2019, 5, 1)),
    ("平成", dt.date(1989, 1, 8)),
    ("昭和", dt.date(1926, 12, 25)),
)
_FIRST_NAMED_FISCAL_YEAR = 1927  # 1926年度 began in 大正


def era_of_day(day: dt.date) -> str:
    """The date in 和暦: 令和8年10月1日 (the first year of an era is 元年).

    Raises:
        ValueError: the day is before 昭和.
    """
    name, first = _era_on(day)
    return f"{name}{_year(day.year - first.year + 1)}年{day.month}月{day.day}日"


def era_of_month(year: int, month: int) -> str:
    """A month in 和暦, by the era in force on its first day: 令和8年10月, 平成31年4月.

    Raises:
        ValueError: the month is before 昭和.
    """
    name, first = _era_on(dt.date(year, month, 1))
    return f"{name}{_year(year - first.year + 1)}年{month}月"


def era_of_fiscal_year(fiscal_year: int) -> str:
    """A fiscal year (年度, April to March) in 和暦: 2026 → 令和8年度, 2019 → 令和元年度.

    Raises:
        ValueError: the fiscal year is before 昭和's first full year (1927).
    """
    # The era that began in or before the calendar year: 2019年度 is 令和元年度 although
    # April 2019 was still 平成 (the government's own naming).
    if fiscal_year < _FIRST_NAMED_FISCAL_YEAR:
        raise ValueError(f"the fiscal year {fiscal_year} is before the eras named here")
    name, first = _era_on(dt.date(fiscal_year, 12, 31))
    return f"{name}{_year(fiscal_year - first.year + 1)}年度"


def period_label(start: dt.date, end: dt.date) -> str:
    """A period [start, end) as 和暦 with 西暦 beside it: "令和8年度 第3四半期 (2026-10-01〜
    2026-12-31)". A fiscal year, a fiscal quarter or a month is named; any other span shows its
    first and last days in both calendars.

    Raises:
        ValueError: the period is empty or begins before 昭和.
    """
    if end <= start:
        raise ValueError("the period is empty")
    last = end - dt.timedelta(days=1)
    western = f"({start.isoformat()}〜{last.isoformat()})"
    fiscal_year = start.year if start.month >= 4 else start.year - 1
    months = (end.year - start.year) * 12 + end.month - start.month
    if start.day != 1 or end.day != 1:
        return f"{era_of_day(start)}〜{era_of_day(last)} {western}"
    if months == 12 and start.month == 4:
        return f"{era_of_fiscal_year(fiscal_year)} {western}"
    if months == 3 and start.month in (4, 7, 10, 1):
        quarter = {4: 1, 7: 2, 10: 3, 1: 4}[start.month]
        return f"{era_of_fiscal_year(fiscal_year)} 第{quarter}四半期 {western}"
    if months == 1:
        return f"{era_of_month(start.year, start.month)} {western}"
    return f"{era_of_day(start)}〜{era_of_day(last)} {western}"


def _era_on(day: dt.date) -> tuple[str, dt.date]:
    for name, first in ERAS:
        if day >= first:
            return name, first
    raise ValueError(f"{day.isoformat()} is before the eras this report names (昭和 onward)")


def _year(number: int) -> str:
    return "元" if number == 1 else str(number)
