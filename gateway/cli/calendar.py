"""`tachiai calendar ID --flow FLOW`: the due dates (提供期限) of a monthly flow, by period.

The agreement is found as `tachiai agreements show` finds it (configured, else bundled).
JSON output is a list of {"period": "YYYY-MM", "due": "YYYY-MM-DD"}; the keys are stable.
"""

from __future__ import annotations

import argparse

from gateway.cli.agreements import find_agreement
from gateway.cli.common import Subparsers, print_json
from gateway.errors import InputError, NotFound, UsageError
from gateway.i18n import _
from gateway.state import clock
from policies.calendar import Period
from policies.schedule import MAX_PERIODS, due_dates, first_period, next_due

_WEEKDAYS = "月火水木金土日"


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "calendar",
        parents=[common],
        help=_("due dates of a monthly flow (翌月の最終業務日の一業務日前 etc.)"),
    )
    p.add_argument("id", help=_("agreement id"))
    p.add_argument("--flow", required=True, help=_("flow id, e.g. monthly"))
    p.add_argument(
        "--from",
        dest="start",
        metavar="YYYY-MM",
        help=_("first period to list (default: the next one due)"),
    )
    p.add_argument("--months", type=int, default=12,
                   help=_("how many periods (1–{max_periods})").format(max_periods=MAX_PERIODS))
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_calendar)


def _calendar(args: argparse.Namespace) -> int:
    """Raises: NotFound (no such agreement or flow), InputError (not a monthly flow),
    UsageError (a malformed --from or --months)."""
    agreement = find_agreement(args, args.id)
    try:
        flow = agreement.flow(args.flow)
    except KeyError:
        raise NotFound(
            _("agreement {agreement} has no flow {flow}").format(agreement=agreement.id,
                                                                 flow=repr(args.flow)),
            hint=_("use one of: {flows}").format(flows=", ".join(f.id for f in agreement.flows)),
        ) from None
    if not flow.schedule.monthly:
        raise InputError(
            _("flow {flow} has no monthly schedule ({schedule}), so it has no due dates").format(
                flow=flow.id, schedule=flow.schedule.words)
        )
    if not 1 <= args.months <= MAX_PERIODS:
        raise UsageError(_("--months must be 1 to {most}").format(most=MAX_PERIODS))
    if args.start is not None:
        try:
            start = Period.parse(args.start)
        except ValueError as exc:
            raise UsageError(_("--from: {problem}").format(problem=exc)) from None
    else:
        upcoming = next_due(agreement, flow, clock.today())
        start = upcoming[0] if upcoming is not None else first_period(agreement, flow)
    try:
        rows = due_dates(agreement, flow, start, args.months)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print_json([{"period": str(p), "due": d.isoformat()} for p, d in rows])
        return 0
    print(f"{agreement.id} / {flow.id}: {flow.schedule.words}")
    for period, due in rows:
        note = "" if agreement.in_force(due) else _("  (agreement not in force)")
        print(_("  {period}  due {due} ({weekday}){note}").format(
            period=period, due=due.isoformat(), weekday=_WEEKDAYS[due.weekday()], note=note))
    return 0
