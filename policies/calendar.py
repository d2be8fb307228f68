"""Business days (業務日) and the due dates of monthly provision (月次の提供期限).

Owns what counts as a business day — not Saturday or Sunday, not a national holiday (国民の祝日,
振替休日, 国民の休日), not the year-end closure 12月29日–1月3日 — and the monthly due-date rule
of the agreements. Pure: every date is an argument; it never reads the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Any

__all__ = [
    "Period",
    "add_business_days",
    "is_business_day",
    "last_business_day",
    "monthly_due_date",
]


@dataclass(frozen=True, order=True)
class Period:
    """A calendar month that a monthly provision covers (対象月), e.g. Period(2026, 3) = "2026-03".

    Raises:
        ValueError: on construction, if the month is not 1–12 or the year not 1–9999.
    """

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12:
            raise ValueError("a period's month must be 1 to 12")
        if not 1 <= self.year <= 9999:
            raise ValueError("a period's year must be 1 to 9999")

    @classmethod
    def parse(cls, text: str) -> Period:
        """Parse "YYYY-MM" (ASCII digits, two-digit month).

        Raises:
            ValueError: the text is not of that form or names no month.
        """
        match = _PERIOD.fullmatch(text)
        if not match:
            raise ValueError("a period is written YYYY-MM, e.g. 2026-03")
        return cls(int(match["year"]), int(match["month"]))

    def next(self) -> Period:
        """The month after this one.

        Raises:
            ValueError: there is none (after 9999-12).
        """
        if self.month == 12:
            return Period(self.year + 1, 1)
        return Period(self.year, self.month + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def is_business_day(d: date) -> bool:
    """True if `d` is a business day (業務日): a weekday, not a holiday, not 12/29–1/3."""
    if d.weekday() >= 5:  # Saturday = 5, Sunday = 6
        return False
    if _is_year_end_closure(d):
        return False
    # jpholiday covers 国民の祝日 with 振替休日 and 国民の休日 (e.g. 2026-05-06, 2026-09-22).
    return not _holidays().is_holiday(d)


def add_business_days(d: date, n: int) -> date:
    """The n-th business day after `d` (before it, for negative n), not counting `d` itself.

    `add_business_days(d, 1)` is the next business day after d whether or not d is one;
    n == 0 returns d unchanged.
    """
    step = timedelta(days=1 if n > 0 else -1)
    remaining = abs(n)
    current = d
    while remaining:
        current += step
        if is_business_day(current):
            remaining -= 1
    return current


def last_business_day(year: int, month: int) -> date:
    """The last business day (最終業務日) of the given month.

    Raises:
        ValueError: the month is not 1–12 or the year not 1–9999.
    """
    Period(year, month)  # validates, with our message rather than datetime's
    current = date(year, 12, 31) if month == 12 else date(year, month + 1, 1) - timedelta(days=1)
    while not is_business_day(current):
        current -= timedelta(days=1)
    return current


def monthly_due_date(period: Period | str | tuple[int, int]) -> date:
    """Due date of a monthly provision for `period` (対象月).

    Implements 「月次で翌月の最終業務日の遅くとも一業務日前まで」 (seeds 000 and 001): one business
    day before the last business day of the month after the period. For 2026-03 that is
    2026-04-28: 4/30 is the last business day of April and 4/29 is 昭和の日.

    Raises:
        ValueError: the period is malformed (see Period).
    """
    if isinstance(period, str):
        period = Period.parse(period)
    elif isinstance(period, tuple):
        period = Period(*period)
    following = period.next()
    return add_business_days(last_business_day(following.year, following.month), -1)


# --- private helpers -----------------------------------------------------------------------------

@cache
def _holidays() -> Any:
    """An instance rather than jpholiday's global registry (LIBRARIES.md): nothing else in the
    process can change which days count as holidays here. Its cache only memoises the holiday
    rules. Made when a date is first judged: loading jpholiday costs every command start-up."""
    import jpholiday

    return jpholiday.JPHoliday()


_PERIOD = re.compile(r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})")


def _is_year_end_closure(d: date) -> bool:
    # 年末年始の休日 (行政機関の休日に関する法律 第1条第1項第3号): 12月29日から翌年1月3日まで.
    return (d.month == 12 and d.day >= 29) or (d.month == 1 and d.day <= 3)
