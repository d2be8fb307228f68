"""When provisions are due (提供期限) and which are late (遅延): decisions on a flow's schedule.

Owns the due date of each period of a monthly flow, the list of periods owed but not delivered
by their due date (the `late` decision, with the term it applies), and which period a delivery
fills. Pure: "today" and what was delivered are arguments; it never reads the clock or a store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from policies.agreement import Agreement, Flow
from policies.calendar import Period, add_business_days, last_business_day
from policies.reasons import Reason
from policies.wording import R_

__all__ = [
    "MAX_PERIODS",
    "LatePart",
    "Overdue",
    "due_date",
    "due_dates",
    "first_period",
    "late_parts",
    "next_due",
    "overdue_periods",
    "period_for_delivery",
]

# A bound on how many periods one call walks: 20 years of months. A daemon asking about more has
# a wrong `since`; refusing to build a list of thousands keeps a mistake from becoming an outage.
MAX_PERIODS = 240


@dataclass(frozen=True)
class Overdue:
    """A period owed on a monthly flow and not delivered by its due date: the `late` decision."""

    period: Period
    due: dt.date
    reason: Reason


def due_date(agreement: Agreement, flow: Flow, period: Period) -> dt.date:
    """The due date of a monthly flow's provision for `period` (対象月).

    Raises:
        ValueError: the flow has no monthly schedule, or the period is out of range.
    """
    schedule = flow.schedule
    if not schedule.monthly:
        raise ValueError(
            f"flow {flow.id} of {agreement.id} has no monthly schedule ({schedule.words})"
        )
    following = period.next()
    last = last_business_day(following.year, following.month)
    if schedule.due == "next-month-last-business-day-minus-1":
        # 翌月の最終業務日の遅くとも一業務日前まで (seeds 000 記1(2), 001 記1(2)ア)
        return add_business_days(last, -1)
    if schedule.due == "next-month-last-business-day":
        return last
    raise ValueError(f"unknown due rule {schedule.due!r}")  # the parser admits none other


def first_period(agreement: Agreement, flow: Flow) -> Period:
    """The first month owed: the schedule's first_period, else the month the agreement began."""
    if flow.schedule.first_period is not None:
        return flow.schedule.first_period
    return Period(agreement.valid_from.year, agreement.valid_from.month)


def due_dates(
    agreement: Agreement, flow: Flow, start: Period, months: int
) -> list[tuple[Period, dt.date]]:
    """`months` consecutive periods from `start` with their due dates (for the calendar).

    Raises:
        ValueError: the flow is not monthly, or months is not 1 to MAX_PERIODS.
    """
    if not 1 <= months <= MAX_PERIODS:
        raise ValueError(f"months must be 1 to {MAX_PERIODS}")
    out: list[tuple[Period, dt.date]] = []
    period = start
    for _ in range(months):
        out.append((period, due_date(agreement, flow, period)))
        period = period.next()
    return out


def next_due(agreement: Agreement, flow: Flow, today: dt.date) -> tuple[Period, dt.date] | None:
    """The earliest period (from the first owed) whose due date is today or later, while the
    agreement is in force on that date; None for flows without a monthly schedule."""
    if not flow.schedule.monthly:
        return None
    period = max(first_period(agreement, flow), _period_before(today, 2))
    for _ in range(MAX_PERIODS):
        due = due_date(agreement, flow, period)
        if due >= today and agreement.in_force(due):
            return period, due
        if due >= today and due > agreement.valid_from:
            return None  # the agreement has ended: nothing more is owed
        period = period.next()
    return None


def overdue_periods(
    agreement: Agreement,
    flow: Flow,
    delivered: Collection[Period],
    today: dt.date,
    *,
    since: dt.date | None = None,
) -> list[Overdue]:
    """Periods owed on a monthly flow and not delivered by their due date, oldest first.

    A period is late when its due date is before `today` (the due date itself is still in time:
    「…までに」), it is not in `delivered`, and the agreement was in force on the due date (no
    provision is owed under an expired or not yet valid agreement). `since` limits the answer to
    due dates on or after it — the day the daemon began keeping this flow's deliveries — so a
    new installation does not call every past month late. At most MAX_PERIODS are returned.
    Flows without a monthly schedule are never late by date (遅滞なく is judged by people).
    """
    if not flow.schedule.monthly:
        return []
    period = first_period(agreement, flow)
    if since is not None:
        # Skip ahead cheaply: a period's due date is always in the month after it.
        period = max(period, _period_before(since, 2))
    out: list[Overdue] = []
    key = f"flows.{flow.id}.schedule"
    for _ in range(MAX_PERIODS):
        due = due_date(agreement, flow, period)
        if due >= today:
            break
        owed = agreement.in_force(due) and (since is None or due >= since)
        if owed and period not in delivered:
            out.append(
                Overdue(
                    period,
                    due,
                    agreement.reason(
                        "schedule.late",
                        R_("the provision for {period} was due by {due} ({schedule}) and has "
                           "not been delivered; deliver it now and record why it was late",
                           period=period, due=due.isoformat(), schedule=flow.schedule.words),
                        key,
                    ),
                )
            )
        period = period.next()
    return out


def period_for_delivery(
    agreement: Agreement, flow: Flow, delivered: Collection[Period], on: dt.date
) -> Period | None:
    """The period a delivery made on `on` fills: the oldest owed period, already ended, that
    has not been delivered. None when every ended period is delivered (an extra provision, e.g.
    a correction) or the flow is not monthly.
    """
    if not flow.schedule.monthly:
        return None
    current = Period(on.year, on.month)
    period = first_period(agreement, flow)
    for _ in range(MAX_PERIODS * 2):
        if period >= current:
            return None  # a month is provided after it ends
        if period not in delivered and agreement.in_force(due_date(agreement, flow, period)):
            return period
        period = period.next()
    return None


@dataclass(frozen=True)
class LatePart:
    """On a monthly flow to a party group (国保連合会, 市町村): a member's part of a period not
    delivered by the period's due date; `member` is "" when nothing was forwarded at all."""

    period: Period
    due: dt.date
    member: str
    reason: Reason


#: One fan-out on the flow: the day it was made, and each member's part with the day it was
#: delivered (None: not yet).
Parts = tuple[dt.date, Mapping[str, dt.date | None]]


def late_parts(
    agreement: Agreement,
    flow: Flow,
    fanouts: Sequence[Parts],
    today: dt.date,
    *,
    since: dt.date | None = None,
    settled: Collection[Period] = (),
) -> list[LatePart]:
    """Each member's part of a monthly group flow that is late, oldest period first.

    Each fan-out fills the oldest owed period by the day it was made (as a delivery does on a
    flow to one party); `settled` periods were handled before tracking began. A period past its
    due date that no fan-out filled is late as a whole (member ""); a filled one is late for
    every member whose part was not delivered by its due date and still is not. A member with
    no rows in the file has no part and owes nothing.
    """
    if not flow.schedule.monthly:
        return []
    filled: dict[Period, Mapping[str, dt.date | None]] = {}
    for made, parts in sorted(fanouts, key=lambda f: f[0]):
        period = period_for_delivery(agreement, flow, {*settled, *filled}, made)
        if period is not None:
            filled[period] = parts
    out = [LatePart(o.period, o.due, "", o.reason)
           for o in overdue_periods(agreement, flow, filled, today, since=since)]
    key = f"flows.{flow.id}.schedule"
    for period, parts in filled.items():
        due = due_date(agreement, flow, period)
        if due >= today or (since is not None and due < since):
            continue
        for member, delivered in sorted(parts.items()):
            if delivered is None:
                out.append(LatePart(period, due, member, agreement.reason(
                    "schedule.part-late",
                    R_("{member}'s part of the provision for {period} was due by {due} "
                       "({schedule}) and has not been delivered; see why with `tachiai "
                       "transfers show`, deliver it now and record why it was late",
                       member=member, period=period, due=due.isoformat(),
                       schedule=flow.schedule.words),
                    key)))
    return sorted(out, key=lambda x: (x.period, x.member))


# --- private helpers -----------------------------------------------------------------------------


def _period_before(day: dt.date, months: int) -> Period:
    index = day.year * 12 + day.month - 1 - months
    return Period(index // 12, index % 12 + 1)
