"""Business days (業務日) and monthly due dates, against tables worked out by hand."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.calendar import (
    Period,
    add_business_days,
    is_business_day,
    last_business_day,
    monthly_due_date,
)

# 「月次で翌月の最終業務日の遅くとも一業務日前まで」, worked out by hand from a paper calendar
# (2026-01-01 is a Thursday, 2027-01-01 a Friday, 2028-01-01 a Saturday) and the holiday lists
# below. Each row: period → (last business day of the next month, the due date one before it).
DUE_DATES = [
    # next month: Jan 2026 ends Sat 31 → last business day Fri 30 → due Thu 29
    ("2025-12", date(2026, 1, 29)),
    # Feb 2026 ends Sat 28 → Fri 27 → Thu 26
    ("2026-01", date(2026, 2, 26)),
    # Mar 2026 ends Tue 31 → Tue 31 → Mon 30
    ("2026-02", date(2026, 3, 30)),
    # Apr 2026 ends Thu 30 → Thu 30; Wed 29 is 昭和の日 → Tue 28
    ("2026-03", date(2026, 4, 28)),
    # May 2026 ends Sun 31 → Fri 29 → Thu 28
    ("2026-04", date(2026, 5, 28)),
    # Jun 2026 ends Tue 30 → Tue 30 → Mon 29
    ("2026-05", date(2026, 6, 29)),
    # Jul 2026 ends Fri 31 → Fri 31 → Thu 30
    ("2026-06", date(2026, 7, 30)),
    # Aug 2026 ends Mon 31 → Mon 31 → Fri 28 (29, 30 are the weekend)
    ("2026-07", date(2026, 8, 28)),
    # Sep 2026 ends Wed 30 → Wed 30 → Tue 29
    ("2026-08", date(2026, 9, 29)),
    # Oct 2026 ends Sat 31 → Fri 30 → Thu 29
    ("2026-09", date(2026, 10, 29)),
    # Nov 2026 ends Mon 30 → Mon 30 → Fri 27
    ("2026-10", date(2026, 11, 27)),
    # Dec 2026: 29–31 closed (Tue–Thu) → Mon 28 → Fri 25
    ("2026-11", date(2026, 12, 25)),
    # Jan 2027 ends Sun 31 → Fri 29 → Thu 28
    ("2026-12", date(2027, 1, 28)),
    # Feb 2027 ends Sun 28 → Fri 26 → Thu 25
    ("2027-01", date(2027, 2, 25)),
    # Mar 2027 ends Wed 31 → Wed 31 → Tue 30
    ("2027-02", date(2027, 3, 30)),
    # Apr 2027 ends Fri 30 → Fri 30; Thu 29 is 昭和の日 → Wed 28
    ("2027-03", date(2027, 4, 28)),
    # May 2027 ends Mon 31 → Mon 31 → Fri 28
    ("2027-04", date(2027, 5, 28)),
    # Jun 2027 ends Wed 30 → Wed 30 → Tue 29
    ("2027-05", date(2027, 6, 29)),
    # Jul 2027 ends Sat 31 → Fri 30 → Thu 29
    ("2027-06", date(2027, 7, 29)),
    # Aug 2027 ends Tue 31 → Tue 31 → Mon 30
    ("2027-07", date(2027, 8, 30)),
    # Sep 2027 ends Thu 30 → Thu 30 → Wed 29
    ("2027-08", date(2027, 9, 29)),
    # Oct 2027 ends Sun 31 → Fri 29 → Thu 28
    ("2027-09", date(2027, 10, 28)),
    # Nov 2027 ends Tue 30 → Tue 30 → Mon 29
    ("2027-10", date(2027, 11, 29)),
    # Dec 2027: 29–31 closed (Wed–Fri) → Tue 28 → Mon 27
    ("2027-11", date(2027, 12, 27)),
    # Jan 2028 ends Mon 31 → Mon 31 → Fri 28
    ("2027-12", date(2028, 1, 28)),
]


@pytest.mark.parametrize(("period", "due"), DUE_DATES)
def test_monthly_due_dates(period: str, due: date) -> None:
    assert monthly_due_date(period) == due
    assert is_business_day(due)


def test_due_date_accepts_a_period_or_a_tuple() -> None:
    assert monthly_due_date(Period(2026, 3)) == date(2026, 4, 28)
    assert monthly_due_date((2026, 11)) == date(2026, 12, 25)


# 国民の祝日 2026 and 2027 as published by 内閣府 (2027's equinoxes per the 2026-02 官報 notice).
HOLIDAYS_2026 = [
    date(2026, 1, 1),  # 元日
    date(2026, 1, 12),  # 成人の日
    date(2026, 2, 11),  # 建国記念の日
    date(2026, 2, 23),  # 天皇誕生日
    date(2026, 3, 20),  # 春分の日
    date(2026, 4, 29),  # 昭和の日
    date(2026, 5, 3),  # 憲法記念日 (Sunday)
    date(2026, 5, 4),  # みどりの日
    date(2026, 5, 5),  # こどもの日
    date(2026, 5, 6),  # 振替休日
    date(2026, 7, 20),  # 海の日
    date(2026, 8, 11),  # 山の日
    date(2026, 9, 21),  # 敬老の日
    date(2026, 9, 22),  # 国民の休日 (between two holidays)
    date(2026, 9, 23),  # 秋分の日
    date(2026, 10, 12),  # スポーツの日
    date(2026, 11, 3),  # 文化の日
    date(2026, 11, 23),  # 勤労感謝の日
]
HOLIDAYS_2027 = [
    date(2027, 1, 1),  # 元日
    date(2027, 1, 11),  # 成人の日
    date(2027, 2, 11),  # 建国記念の日
    date(2027, 2, 23),  # 天皇誕生日
    date(2027, 3, 21),  # 春分の日 (Sunday)
    date(2027, 3, 22),  # 振替休日
    date(2027, 4, 29),  # 昭和の日
    date(2027, 5, 3),  # 憲法記念日
    date(2027, 5, 4),  # みどりの日
    date(2027, 5, 5),  # こどもの日
    date(2027, 7, 19),  # 海の日
    date(2027, 8, 11),  # 山の日
    date(2027, 9, 20),  # 敬老の日
    date(2027, 9, 23),  # 秋分の日
    date(2027, 10, 11),  # スポーツの日
    date(2027, 11, 3),  # 文化の日
    date(2027, 11, 23),  # 勤労感謝の日
]


@pytest.mark.parametrize("holiday", HOLIDAYS_2026 + HOLIDAYS_2027)
def test_holidays_are_not_business_days(holiday: date) -> None:
    assert not is_business_day(holiday)


@pytest.mark.parametrize("year", [2026, 2027])
def test_weekdays_that_are_not_listed_holidays_are_business_days(year: int) -> None:
    holidays = set(HOLIDAYS_2026 + HOLIDAYS_2027)
    day = date(year, 1, 4)  # after the year-end closure
    while day < date(year, 12, 29):
        expected = day.weekday() < 5 and day not in holidays
        assert is_business_day(day) is expected, day
        day += timedelta(days=1)


@pytest.mark.parametrize(
    "day",
    [
        date(2025, 12, 29),  # Monday
        date(2025, 12, 30),
        date(2025, 12, 31),
        date(2026, 1, 2),  # Friday
        date(2026, 12, 29),  # Tuesday
        date(2026, 12, 30),
        date(2026, 12, 31),
        date(2027, 12, 29),  # Wednesday
        date(2027, 12, 30),
        date(2027, 12, 31),
        date(2029, 1, 2),  # Tuesday
        date(2029, 1, 3),  # Wednesday
    ],
)
def test_year_end_closure_is_not_business_days(day: date) -> None:
    assert day.weekday() < 5
    assert not is_business_day(day)


@pytest.mark.parametrize(
    "day", [date(2026, 1, 5), date(2026, 12, 28), date(2027, 1, 4), date(2026, 4, 30)]
)
def test_ordinary_weekdays_are_business_days(day: date) -> None:
    assert is_business_day(day)


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2026, 4, 28), 1, date(2026, 4, 30)),  # over 昭和の日
        (date(2026, 4, 30), -1, date(2026, 4, 28)),
        (date(2026, 5, 1), 1, date(2026, 5, 7)),  # over the weekend and 5/4–5/6
        (date(2026, 5, 7), -1, date(2026, 5, 1)),
        (date(2026, 5, 2), 1, date(2026, 5, 7)),  # from a Saturday, d itself not counted
        (date(2026, 5, 2), -1, date(2026, 5, 1)),
        (date(2026, 9, 18), 1, date(2026, 9, 24)),  # over 9/21–9/23
        (date(2026, 12, 28), 1, date(2027, 1, 4)),  # over the year-end closure
        (date(2027, 1, 4), -1, date(2026, 12, 28)),
        (date(2026, 3, 2), 5, date(2026, 3, 9)),
        (date(2026, 3, 2), 15, date(2026, 3, 24)),  # 3/20 春分の日 skipped
        (date(2026, 3, 2), 0, date(2026, 3, 2)),
        (date(2026, 5, 3), 0, date(2026, 5, 3)),  # n == 0 returns d, business day or not
    ],
)
def test_add_business_days(start: date, n: int, expected: date) -> None:
    assert add_business_days(start, n) == expected


@pytest.mark.parametrize(
    ("year", "month", "expected"),
    [
        (2026, 1, date(2026, 1, 30)),
        (2026, 2, date(2026, 2, 27)),
        (2026, 4, date(2026, 4, 30)),
        (2026, 5, date(2026, 5, 29)),
        (2026, 10, date(2026, 10, 30)),
        (2026, 12, date(2026, 12, 28)),
        (2027, 12, date(2027, 12, 28)),
    ],
)
def test_last_business_day(year: int, month: int, expected: date) -> None:
    assert last_business_day(year, month) == expected


@pytest.mark.parametrize(("year", "month"), [(2026, 0), (2026, 13), (0, 1)])
def test_last_business_day_rejects_impossible_months(year: int, month: int) -> None:
    with pytest.raises(ValueError):
        last_business_day(year, month)


def test_period_parse_str_and_next() -> None:
    period = Period.parse("2026-03")
    assert period == Period(2026, 3)
    assert str(period) == "2026-03"
    assert period.next() == Period(2026, 4)
    assert Period(2026, 12).next() == Period(2027, 1)
    assert str(Period(987, 1)) == "0987-01"
    assert Period(2026, 12) < Period(2027, 1)


@pytest.mark.parametrize(
    "text", ["", "2026-3", "2026-13", "2026-00", "26-03", "2026/03", "2026-03-01", "２０２６-０３"]
)
def test_period_parse_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ValueError):
        Period.parse(text)


def test_period_rejects_bad_fields_and_has_no_month_after_9999_12() -> None:
    with pytest.raises(ValueError):
        Period(2026, 0)
    with pytest.raises(ValueError):
        Period(10000, 1)
    with pytest.raises(ValueError):
        Period(9999, 12).next()
    with pytest.raises(ValueError):
        monthly_due_date("2026-13")


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31)), st.integers(-40, 40))
def test_add_business_days_lands_on_business_days_and_reverses(start: date, n: int) -> None:
    result = add_business_days(start, n)
    if n == 0:
        assert result == start
        return
    assert is_business_day(result)
    assert (result > start) if n > 0 else (result < start)
    if is_business_day(start):
        assert add_business_days(result, -n) == start


@given(st.integers(1990, 2090), st.integers(1, 12))
def test_due_date_is_before_the_last_business_day_of_the_next_month(year: int, month: int) -> None:
    following = Period(year, month).next()
    due = monthly_due_date((year, month))
    last = last_business_day(following.year, following.month)
    assert (due.year, due.month) == (following.year, following.month)
    assert due < last
    assert add_business_days(due, 1) == last
