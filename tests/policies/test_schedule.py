"""Due dates of the agreements' monthly flows, the `late` decision, and which period a delivery
fills."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.agreement import Agreement
from policies.agreement_file import parse_agreement
from policies.calendar import Period, is_business_day, monthly_due_date
from policies.schedule import (
    MAX_PERIODS,
    due_date,
    due_dates,
    first_period,
    next_due,
    overdue_periods,
    period_for_delivery,
)
from tests.policies.bundled import agreement, table
from tests.policies.test_calendar import DUE_DATES

NHI = agreement("isa-nhi-status-loss")
SKILLED = agreement("isa-mhlw-specified-skilled")
SHINJUKU = agreement("shinjuku-immigration-arrears")


def _months(first: Period, last: Period) -> set[Period]:
    out = set()
    while first <= last:
        out.add(first)
        first = first.next()
    return out


def _variant(**schedule: Any) -> Agreement:
    data = table("isa-nhi-status-loss.toml")
    data["flows"][0]["schedule"].update(schedule)
    return parse_agreement(data, "variant")


@pytest.mark.parametrize(("period", "due"), DUE_DATES)
@pytest.mark.parametrize("monthly", [NHI, SKILLED], ids=["seed-000", "seed-001"])
def test_due_dates_of_2026_and_2027(monthly: Agreement, period: str, due: dt.date) -> None:
    # 翌月の最終業務日の遅くとも一業務日前まで, e.g. 2026-03 → 2026-04-28 (4/29 is 昭和の日),
    # 2026-11 → 2026-12-25 (12/29–31 closed), 2025-12 → 2026-01-29.
    assert due_date(monthly, monthly.flow("monthly"), Period.parse(period)) == due


def test_the_other_due_rule_is_the_last_business_day() -> None:
    variant = _variant(due="next-month-last-business-day")
    assert due_date(variant, variant.flow("monthly"), Period(2026, 3)) == dt.date(2026, 4, 30)
    assert due_date(variant, variant.flow("monthly"), Period(2026, 11)) == dt.date(2026, 12, 28)


def test_flows_without_a_monthly_schedule_have_no_due_date() -> None:
    for flow in (SKILLED.flow("adhoc-notice"), SHINJUKU.flow("provision")):
        owner = SKILLED if flow.id == "adhoc-notice" else SHINJUKU
        with pytest.raises(ValueError, match="no monthly schedule"):
            due_date(owner, flow, Period(2026, 3))
        assert next_due(owner, flow, dt.date(2026, 7, 1)) is None
        assert overdue_periods(owner, flow, set(), dt.date(2027, 1, 1)) == []
        assert period_for_delivery(owner, flow, set(), dt.date(2027, 1, 1)) is None


def test_due_dates_lists_consecutive_periods() -> None:
    rows = due_dates(NHI, NHI.flow("monthly"), Period(2026, 11), 3)
    assert rows == [
        (Period(2026, 11), dt.date(2026, 12, 25)),
        (Period(2026, 12), dt.date(2027, 1, 28)),
        (Period(2027, 1), dt.date(2027, 2, 25)),
    ]
    for bad in (0, MAX_PERIODS + 1):
        with pytest.raises(ValueError):
            due_dates(NHI, NHI.flow("monthly"), Period(2026, 1), bad)


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (dt.date(2026, 11, 20), (Period(2026, 10), dt.date(2026, 11, 27))),
        (dt.date(2026, 11, 27), (Period(2026, 10), dt.date(2026, 11, 27))),  # the due day itself
        (dt.date(2026, 11, 28), (Period(2026, 11), dt.date(2026, 12, 25))),
        (dt.date(2020, 1, 1), (Period(2023, 3), dt.date(2023, 4, 27))),  # before the first period
    ],
)
def test_next_due(today: dt.date, expected: tuple[Period, dt.date]) -> None:
    assert next_due(NHI, NHI.flow("monthly"), today) == expected


def test_nothing_is_due_after_the_agreement_ends() -> None:
    data = table("isa-nhi-status-loss.toml")
    data["valid_until"] = dt.date(2026, 12, 31)
    ending = parse_agreement(data, "ending")
    flow = ending.flow("monthly")
    assert next_due(ending, flow, dt.date(2026, 12, 1)) == (Period(2026, 11), dt.date(2026, 12, 25))
    # 2026-12 would be due 2027-01-28, when the agreement is no longer in force.
    assert next_due(ending, flow, dt.date(2026, 12, 26)) is None
    late = overdue_periods(ending, flow, set(), dt.date(2027, 6, 1), since=dt.date(2026, 1, 1))
    assert [o.period for o in late][-1] == Period(2026, 11)


def test_late_periods_are_the_undelivered_ones_past_their_due_date() -> None:
    flow = NHI.flow("monthly")
    delivered = _months(Period(2023, 3), Period(2026, 8)) - {Period(2026, 3), Period(2026, 7)}
    late = overdue_periods(NHI, flow, delivered, dt.date(2026, 9, 1), since=dt.date(2026, 1, 1))
    assert [(o.period, o.due) for o in late] == [
        (Period(2026, 3), dt.date(2026, 4, 28)),
        (Period(2026, 7), dt.date(2026, 8, 28)),
    ]
    reason = late[0].reason
    assert reason.rule == "schedule.late"
    assert reason.term == "isa-nhi-status-loss/flows.monthly.schedule"
    assert reason.clause and "最終業務日" in reason.clause
    assert "2026-03" in reason.message and "2026-04-28" in reason.message


def test_the_due_day_itself_is_still_in_time() -> None:
    flow = NHI.flow("monthly")
    delivered = _months(Period(2023, 3), Period(2026, 2))
    assert overdue_periods(NHI, flow, delivered, dt.date(2026, 4, 28)) == []
    late = overdue_periods(NHI, flow, delivered, dt.date(2026, 4, 29))
    assert [o.period for o in late] == [Period(2026, 3)]


def test_since_keeps_a_new_installation_from_calling_every_past_month_late() -> None:
    flow = NHI.flow("monthly")
    everything = overdue_periods(NHI, flow, set(), dt.date(2026, 11, 1))
    assert everything[0].period == Period(2023, 3) and len(everything) == 43
    # 2026-08 was due 2026-09-29, before the daemon began keeping this flow: not called late.
    recent = overdue_periods(NHI, flow, set(), dt.date(2026, 11, 1), since=dt.date(2026, 9, 29))
    assert [o.period for o in recent] == [Period(2026, 8), Period(2026, 9)]
    recent = overdue_periods(NHI, flow, set(), dt.date(2026, 11, 1), since=dt.date(2026, 9, 30))
    assert [o.period for o in recent] == [Period(2026, 9)]
    assert all(o.due >= dt.date(2026, 10, 1) for o in recent)


def test_the_walk_is_bounded() -> None:
    data = table("isa-nhi-status-loss.toml")
    data["valid_from"] = dt.date(1990, 1, 1)
    data["flows"][0]["schedule"].update(first_period="1990-01", catch_up_from=dt.date(1990, 1, 1))
    ancient = parse_agreement(data, "ancient")
    late = overdue_periods(ancient, ancient.flow("monthly"), set(), dt.date(2026, 1, 1))
    assert len(late) == MAX_PERIODS


def test_the_first_period_defaults_to_the_month_the_agreement_began() -> None:
    data = table("isa-nhi-status-loss.toml")
    del data["flows"][0]["schedule"]["first_period"]
    plain = parse_agreement(data, "plain")
    assert first_period(plain, plain.flow("monthly")) == Period(2023, 3)


@pytest.mark.parametrize(
    ("delivered", "on", "expected"),
    [
        (_months(Period(2023, 3), Period(2026, 9)), dt.date(2026, 11, 5), Period(2026, 10)),
        (_months(Period(2023, 3), Period(2026, 10)), dt.date(2026, 11, 5), None),  # an extra one
        (
            _months(Period(2023, 3), Period(2026, 9)) - {Period(2025, 2)},
            dt.date(2026, 11, 5),
            Period(2025, 2),
        ),  # the oldest gap first
        (_months(Period(2023, 3), Period(2026, 9)), dt.date(2026, 10, 15), None),  # 10 not ended
        (set(), dt.date(2023, 4, 10), Period(2023, 3)),  # the first (catch-up) provision
    ],
)
def test_period_for_delivery(delivered: set[Period], on: dt.date, expected: Period | None) -> None:
    assert period_for_delivery(NHI, NHI.flow("monthly"), delivered, on) == expected


@given(st.dates(min_value=dt.date(2023, 3, 1), max_value=dt.date(2040, 12, 31)))
def test_every_due_date_is_a_business_day_in_the_following_month(day: dt.date) -> None:
    period = Period(day.year, day.month)
    due = due_date(NHI, NHI.flow("monthly"), period)
    following = period.next()
    assert is_business_day(due)
    assert (due.year, due.month) == (following.year, following.month)
    assert due == monthly_due_date(period)
