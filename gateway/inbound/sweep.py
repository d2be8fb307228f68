"""The deadline sweep (消去・返却の期限): reminders, then overdue holdings (期限超過), each a ledger
event recorded once and handed to the notification command.

Deadlines come from `policies.retention`; the command gets ids, names and dates on stdin, never
personal data or a secret. A crash may drop a notification, never its event. The hook is run
by the same runner as the sending side's (`gateway.transports.notify`), `[inbound]
notify_command` falling back to `[notify] command`; the document keeps its own format
(`holding-notice/1`), which existing hooks read. With `[notify.mail]`, each handler named on
the holding who has an `email` is also mailed, once (`gateway.exchange.notices`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from gateway.errors import PartnerUnavailable
from gateway.exchange import notices as people
from gateway.inbound import holdings
from gateway.inbound.holdings import Holding
from gateway.runtime import Runtime
from gateway.state import clock
from gateway.transports.notify import run_hook
from policies.retention import disposal_deadline, overdue_holding

log = logging.getLogger(__name__)

NOTIFY_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Notice:
    """One reminder or overdue notice, as the notification command receives it."""

    kind: str  # "holding.reminder" or "holding.overdue"
    holding: str
    agreement: str
    flow: str
    provider: str
    party: str
    transfer: str
    deadline: str
    days_left: int
    handlers: tuple[str, ...]
    reminder_day: int | None = None
    rule: str | None = None

    def as_json(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if v is not None}
        body["handlers"] = list(self.handlers)
        return json.dumps(
            {"tachiai": "holding-notice/1", **body}, ensure_ascii=False, sort_keys=True
        ).encode("utf-8")


def sweep_holdings(rt: Runtime, today: dt.date | None = None) -> list[Notice]:
    """Record every reminder and overdue holding not yet recorded; notify; return them.

    A reminder day counts once it is reached (`remind_days`, e.g. 14, 3 and 0 days before the
    deadline); when several were reached since the last sweep, only the nearest is recorded,
    and the earlier ones are never recorded late.

    Raises:
        StorageError: the state database cannot be written.
    """
    today = today or clock.today()
    days = rt.settings.inbound.remind_days
    notices: list[Notice] = []
    for h in holdings.find(rt, states=holdings.HELD):
        agreement = rt.agreements.get(h.agreement or "")
        if agreement is None or h.received_on is None or h.flow is None:
            continue
        received_on = dt.date.fromisoformat(h.received_on)
        deadline = disposal_deadline(agreement, received_on)
        if deadline is None:
            continue  # kept until the purpose is fulfilled: nothing to remind of
        days_left = (deadline - today).days
        notice = Notice(
            "",
            h.id,
            agreement.id,
            h.flow,
            h.provider or "",
            h.recipient or "",
            h.transfer or "",
            deadline.isoformat(),
            days_left,
            tuple(h.names("handlers")),
        )
        overdue = overdue_holding(agreement, received_on, today)
        if overdue is not None:
            if h.overdue_ns is None:
                notices.append(_overdue(rt, h, notice, overdue.as_dict()))
            continue
        reached = [d for d in days if days_left <= d]
        done = {int(d) for d in h.names("reminded")}
        if not reached or min(reached) in done:
            continue
        notices.append(_remind(rt, h, notice, min(reached), sorted(done | set(reached))))
    if notices:
        rt.flush()
        notify(rt.settings.inbound.notify_command or rt.settings.notify.command, notices)
        people.deliver(rt, [n for notice in notices for n in _to_people(notice)],
                       channels=("mail",))
    return notices


def _to_people(notice: Notice) -> list[people.Notice]:
    """The mail notices of one reminder or overdue notice: one per handler of the holding."""
    facts = {"deadline": notice.deadline, "days_left": notice.days_left,
             "transfer": notice.transfer, "provider": notice.provider}
    if notice.rule:
        facts["rule"] = notice.rule
    command = (f"tachiai holdings certify {notice.holding} --deleted --method TEXT --key KEY; "
               f"tachiai holdings certify {notice.holding} --returned --method TEXT --key KEY")
    return [people.Notice(notice.kind, notice.holding, notice.agreement, notice.flow,
                          "overdue" if notice.kind == "holding.overdue" else "held", name,
                          command, facts, notice.reminder_day or 0) for name in notice.handlers]


def notify(command: Sequence[str], notices: Sequence[Notice]) -> int:
    """Run the notification command once per notice with its JSON on stdin; return failures.

    A failing or missing command is logged (never its output, which is the command's own) and
    never stops the sweep: the ledger already holds the notice.
    """
    if not command:
        return 0
    failed = 0
    for notice in notices:
        try:
            run_hook(command, notice.as_json(), NOTIFY_TIMEOUT_SECONDS)
        except PartnerUnavailable as exc:
            log.warning("the notification command failed for %s: %s", notice.holding, exc)
            failed += 1
    return failed


def _overdue(rt: Runtime, h: Holding, notice: Notice, reason: dict[str, object]) -> Notice:
    now = clock.now_ns()
    notice = replace(notice, kind="holding.overdue", rule=str(reason.get("rule")))
    holdings.update(
        rt,
        h,
        [
            holdings.event(
                "holding.overdue",
                h,
                {
                    "deadline": notice.deadline,
                    "days_left": notice.days_left,
                    "reason": reason,
                    "handlers": list(notice.handlers),
                },
                time_ns=now,
            )
        ],
        overdue_ns=now,
        deadline=notice.deadline,
    )
    log.warning("holding %s is overdue: it had to be disposed of by %s", h.id, notice.deadline)
    return notice


def _remind(rt: Runtime, h: Holding, notice: Notice, day: int, done: list[int]) -> Notice:
    now = clock.now_ns()
    notice = replace(notice, kind="holding.reminder", reminder_day=day)
    holdings.update(
        rt,
        h,
        [
            holdings.event(
                "holding.reminder",
                h,
                {
                    "deadline": notice.deadline,
                    "days_left": notice.days_left,
                    "reminder_day": day,
                    "handlers": list(notice.handlers),
                },
                key=f"{h.id}:holding.reminder:{day}",
                time_ns=now,
            )
        ],
        reminded=json.dumps(done),
        deadline=notice.deadline,
    )
    log.info(
        "holding %s: %d day(s) left to dispose of it (deadline %s)",
        h.id,
        notice.days_left,
        notice.deadline,
    )
    return notice
