"""The handling report (取扱状況報告) of one agreement for a month, a quarter or a fiscal year.

Built from ledger events alone: transfers with their senders and witnesses, deliveries,
rejections with the agreement terms they cite, refused approvals, late provisions, holdings and
their deletion or return (消去・返却), and what is overdue at the end of the period. Quarters
and years are fiscal (年度: April to March), in JST. Rendering is in `audit.report_render`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from audit.checkpoints import JST
from audit.events import Event
from audit.query import Query, search
from audit.wareki import period_label

if TYPE_CHECKING:
    from audit.ledger import Ledger
    from audit.verify import VerifyReport

#: The states a transfer can be left in, as the report names them.
TRANSFER_STATES: Final = {
    "transfer.dropped": "受付 (received)",
    "transfer.quarantined": "検査中 (in quarantine)",
    "transfer.checked": "承認待ち (awaiting approval)",
    "transfer.approved": "承認済み (approved)",
    "transfer.sealed": "暗号化済み (sealed)",
    "transfer.delivered": "送付済み (delivered)",
    "transfer.acknowledged": "受領確認済み (acknowledged)",
    "transfer.rejected": "拒否 (rejected)",
    "transfer.failed": "送付失敗 (delivery failed)",
    "transfer.expired": "承認期限切れ (expired)",
}
#: The rule of an approval held because the same bytes were already delivered on the flow.
DUPLICATE_RULE: Final = "approval.duplicate-file"
HOLDING_CLOSED: Final = {"holding.deleted": "消去 (deleted)", "holding.returned": "返却 (returned)"}
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")


@dataclass(frozen=True)
class Period:
    """A reporting period in JST: [start, end) with the label a reader expects."""

    label: str
    start: dt.date
    end: dt.date  # exclusive

    @property
    def start_ns(self) -> int:
        return _midnight_ns(self.start)

    @property
    def wareki(self) -> str:
        """The period in 和暦 with 西暦 beside it: 令和8年度 第3四半期 (2026-10-01〜2026-12-31);
        before the eras named (昭和 onward), the label and dates in 西暦 only."""
        try:
            return period_label(self.start, self.end)
        except ValueError:
            last = self.end - dt.timedelta(days=1)
            return f"{self.label} ({self.start.isoformat()}〜{last.isoformat()})"

    @property
    def end_ns(self) -> int:
        return _midnight_ns(self.end)

    @classmethod
    def parse(cls, text: str) -> Period:
        """`YYYY-MM`, `YYYY-Qn` (fiscal quarter: Q1 = April–June) or `YYYY` (fiscal year).

        Raises:
            ValueError: for anything else.
        """
        if m := _MONTH.match(text):
            y, mo = int(m[1]), int(m[2])
            end = dt.date(y + mo // 12, mo % 12 + 1, 1)
            return cls(f"{y}年{mo}月", dt.date(y, mo, 1), end)
        if m := _QUARTER.match(text):
            fy, q = int(m[1]), int(m[2])
            first = 4 + 3 * (q - 1)  # months from April of the fiscal year
            start = dt.date(fy + (first - 1) // 12, (first - 1) % 12 + 1, 1)
            after = first + 3
            return cls(
                f"{fy}年度 第{q}四半期",
                start,
                dt.date(fy + (after - 1) // 12, (after - 1) % 12 + 1, 1),
            )
        if m := _YEAR.match(text):
            fy = int(m[1])
            return cls(f"{fy}年度", dt.date(fy, 4, 1), dt.date(fy + 1, 4, 1))
        raise ValueError(
            f"{text!r} is not a period: use YYYY-MM, YYYY-Qn (fiscal quarter, "
            "Q1 = April to June) or YYYY (fiscal year)"
        )


@dataclass
class TransferRow:
    id: str
    flow: str = ""
    received_ns: int | None = None
    file_name: str = ""
    provider: str = ""
    recipient: str = ""
    sender: str = ""
    witnesses: list[str] = field(default_factory=list)
    rows: int | None = None
    sha256: str = ""
    state: str = ""
    delivered_ns: int | None = None
    retries: int = 0
    expired_ns: int | None = None  # not approved within the approval window
    duplicate_ns: int | None = None  # first flagged as bytes already delivered (重複送信の確認)
    duplicate_of: str = ""


@dataclass(frozen=True)
class Rejection:
    transfer: str
    time_ns: int
    stage: str
    by: str
    rule: str
    message: str
    term: str


@dataclass(frozen=True)
class Refusal:
    transfer: str
    time_ns: int
    signer: str
    rule: str
    message: str


@dataclass(frozen=True)
class Late:
    time_ns: int
    flow: str
    period: str
    due: str
    transfer: str  # the late delivery, or "" while nothing has been delivered
    reason: str = ""
    member: str = ""  # on a flow to a party group: the member whose part is late


@dataclass
class HoldingRow:
    id: str
    transfer: str = ""
    received_ns: int | None = None
    deadline: str = ""
    handler: str = ""
    closed: str = ""
    closed_ns: int | None = None
    closed_by: str = ""
    overdue_events: int = 0
    party: str = ""  # whose data: ours, or on a gateway of partitions (区画) one member's
    rows: int | None = None
    openings: int = 0
    erased: bool = False
    refused_requests: int = 0


@dataclass(frozen=True)
class MemberPart:
    """One party's part of the holdings (区画ごとの取扱状況): what it received and what became
    of it."""

    party: str
    files: int
    rows: int
    held: int
    opened: int
    certified: int
    erased: int
    refused_requests: int


@dataclass
class FanoutRow:
    """A held file split among a party group's members (`fanout.created`): each member's part,
    its rows and the transfer that carries it."""

    id: str
    holding: str
    flow: str
    time_ns: int
    withheld: dict[str, int] = field(default_factory=dict)
    children: list[tuple[str, int, str]] = field(default_factory=list)  # member, rows, transfer


@dataclass
class Report:
    """Everything the handling report says, before it is rendered."""

    agreement: str
    period: Period
    generated_ns: int
    verification: VerifyReport | None
    transfers: list[TransferRow] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    late: list[Late] = field(default_factory=list)
    holdings: list[HoldingRow] = field(default_factory=list)
    fanouts: list[FanoutRow] = field(default_factory=list)
    events_in_period: int = 0

    def member_parts(self) -> list[MemberPart]:
        """Each party's part of the holdings, by party id (one line per partition)."""
        out = []
        for party in sorted({h.party for h in self.holdings}):
            mine = [h for h in self.holdings if h.party == party]
            received = [h for h in mine if h.received_ns is not None]
            certified = [h for h in received if h.closed and h.closed_by]
            out.append(MemberPart(
                party or "—", len(received), sum(h.rows or 0 for h in received),
                sum(1 for h in received if not h.closed), sum(1 for h in received if h.openings),
                len(certified), sum(1 for h in received if h.erased),
                sum(h.refused_requests for h in mine)))
        return out

    def delivered_ns(self, transfer: str) -> int | None:
        """When a transfer of this ledger was delivered (None: not by the period's end)."""
        return next((t.delivered_ns for t in self.transfers if t.id == transfer), None)

    def delivered(self) -> list[TransferRow]:
        return [
            t
            for t in self.transfers
            if t.delivered_ns is not None
            and self.period.start_ns <= t.delivered_ns < self.period.end_ns
        ]

    def expired(self) -> list[TransferRow]:
        """Transfers that expired in the period: not approved within the approval window."""
        return [t for t in self.transfers if t.expired_ns is not None
                and self.period.start_ns <= t.expired_ns < self.period.end_ns]

    def duplicates(self) -> list[TransferRow]:
        """Transfers first flagged in the period as bytes already delivered on the flow (the
        duplicate notice): held for a witness's explicit decision, approved or not."""
        return [t for t in self.transfers if t.duplicate_ns is not None
                and self.period.start_ns <= t.duplicate_ns < self.period.end_ns]

    def open_transfers(self) -> list[TransferRow]:
        """Transfers still unfinished (or failed) at the end of the period."""
        return [
            t
            for t in self.transfers
            if t.state
            in (
                TRANSFER_STATES["transfer.checked"],
                TRANSFER_STATES["transfer.approved"],
                TRANSFER_STATES["transfer.sealed"],
                TRANSFER_STATES["transfer.failed"],
            )
        ]

    def overdue_holdings(self) -> list[HoldingRow]:
        """Holdings past their deadline at the end of the period, or closed after it."""
        end = (self.period.end - dt.timedelta(days=1)).isoformat()
        out = []
        for h in self.holdings:
            closed_day = _day(h.closed_ns) if h.closed_ns is not None else None
            late_close = closed_day is not None and h.deadline and closed_day > h.deadline
            if h.overdue_events or late_close or (not h.closed and h.deadline and h.deadline < end):
                out.append(h)
        return out


def build(
    ledger: Ledger,
    agreement: str,
    period: Period,
    *,
    now_ns: int,
    verification: VerifyReport | None,
) -> Report:
    """The report of `agreement` for `period`, from the events up to the period's end.

    Raises:
        LedgerStorageError / LedgerIntegrityError: when the ledger cannot be read.
    """
    report = Report(agreement, period, now_ns, verification)
    events = search(ledger, Query(agreement=agreement, until_ns=period.end_ns))
    _Builder(report).feed(events)
    return report


class _Builder:
    def __init__(self, report: Report) -> None:
        self.report = report
        self.transfers: dict[str, TransferRow] = {}
        self.active: set[str] = set()
        self.holdings: dict[str, HoldingRow] = {}

    def feed(self, events: Iterable[Event]) -> None:
        start = self.report.period.start_ns
        for ev in events:
            in_period = ev.time_ns >= start
            self.report.events_in_period += in_period
            if ev.kind.endswith(".late") or ev.kind == "late":
                if in_period:
                    self._late(ev)
            elif ev.kind.startswith("holding."):
                self._holding(ev)
            elif ev.kind == "fanout.created":
                self._fanout(ev, in_period)
            elif ev.subject and (
                ev.kind.startswith(("transfer.", "approval.", "password."))
                or ev.kind == "delivery.retry"
            ):
                self._transfer(ev, in_period)
        report = self.report
        # A fan-out's parts are shown with their delivery, whenever that was.
        self.active.update(tr for f in report.fanouts for _m, _r, tr in f.children)
        report.transfers = [t for i, t in self.transfers.items() if i in self.active]
        period_start = report.period.start_ns
        report.holdings = [
            h for h in self.holdings.values() if h.closed_ns is None or h.closed_ns >= period_start
        ]

    def _transfer(self, ev: Event, in_period: bool) -> None:
        tid = ev.subject or ""
        t = self.transfers.setdefault(tid, TransferRow(tid))
        d = ev.data
        t.flow = str(d.get("flow", t.flow))
        t.provider = str(d.get("provider", t.provider))
        t.recipient = str(d.get("recipient", t.recipient))
        if in_period:
            self.active.add(tid)
        if ev.kind in TRANSFER_STATES:
            t.state = TRANSFER_STATES[ev.kind]
        if ev.kind == "transfer.dropped":
            t.received_ns = ev.time_ns
            t.file_name = str(d.get("file_name", ""))  # ledgers before the name check
        if ev.kind in ("transfer.quarantined", "transfer.rejected") and d.get("file_name"):
            t.file_name = str(d["file_name"])  # the name once checked (docs/ledger.md §7)
        elif ev.kind == "transfer.checked":
            t.sender = str(d.get("sender") or ev.actor or "")
            t.rows = _int(d.get("rows"))
            t.sha256 = str(d.get("sha256") or t.sha256)
        elif ev.kind == "transfer.quarantined":
            t.sha256 = str(d.get("sha256") or t.sha256)
        elif ev.kind == "approval.accepted":
            who = str(d.get("witness") or ev.actor or "")
            if who and who not in t.witnesses:
                t.witnesses.append(who)
            if d.get("duplicate_of"):
                t.duplicate_of = str(d["duplicate_of"])
                self._duplicate(t, ev)
        elif ev.kind == "approval.voided":
            # The same bytes were delivered after it was approved: back to its witnesses, the
            # approvals set aside no longer among them (docs/notifications.md).
            t.state = TRANSFER_STATES["transfer.checked"]
            gone = {str(_mapping(a).get("witness", "")) for a in d.get("set_aside") or []}
            t.witnesses = [w for w in t.witnesses if w not in gone]
            if d.get("duplicate_of"):
                t.duplicate_of = str(d["duplicate_of"])
                self._duplicate(t, ev)
        elif ev.kind == "transfer.expired":
            t.expired_ns = ev.time_ns
        elif ev.kind == "transfer.delivered":
            t.delivered_ns = ev.time_ns
            if d.get("late") is True and in_period:
                self.report.late.append(
                    Late(ev.time_ns, t.flow, str(d.get("period", "")), str(d.get("due", "")), tid)
                )
        elif ev.kind == "delivery.retry":
            t.retries += 1
        elif ev.kind == "transfer.rejected" and in_period:
            self._rejection(ev, tid)
        elif ev.kind == "approval.refused" and in_period:
            reason = _mapping(d.get("reason"))
            if reason.get("rule") == DUPLICATE_RULE:
                self._duplicate(t, ev)
            self.report.refusals.append(
                Refusal(
                    tid,
                    ev.time_ns,
                    str(d.get("signer") or ev.actor or "不明 (unknown key)"),
                    str(reason.get("rule", "")),
                    str(reason.get("message", "")),
                )
            )

    @staticmethod
    def _duplicate(t: TransferRow, ev: Event) -> None:
        if t.duplicate_ns is None:
            t.duplicate_ns = ev.time_ns

    def _rejection(self, ev: Event, tid: str) -> None:
        reasons = ev.data.get("reasons")
        for reason in reasons if isinstance(reasons, list) else [{}]:
            r = _mapping(reason)
            place = ", ".join(f"{k} {r[k]}" for k in ("row", "column") if k in r)
            message = str(r.get("message", ""))
            self.report.rejections.append(
                Rejection(
                    tid,
                    ev.time_ns,
                    str(ev.data.get("stage", "")),
                    str(ev.data.get("by") or ev.actor or "tachiai"),
                    str(r.get("rule", "")),
                    f"{message} ({place})" if place else message,
                    str(r.get("term", "")),
                )
            )

    def _fanout(self, ev: Event, in_period: bool) -> None:
        d = ev.data
        if not in_period:
            return
        withheld = _mapping(d.get("withheld"))
        children = d.get("children")
        self.report.fanouts.append(FanoutRow(
            str(d.get("fanout", "")), str(d.get("holding", ev.subject or "")),
            str(d.get("flow", "")), ev.time_ns,
            {str(k): _int(v) or 0 for k, v in withheld.items()},
            [(str(c.get("member", "")), _int(c.get("rows")) or 0, str(c.get("transfer", "")))
             for c in (children if isinstance(children, list) else []) if isinstance(c, dict)]))

    def _holding(self, ev: Event) -> None:
        hid = ev.subject or str(ev.data.get("holding", ""))
        h = self.holdings.setdefault(hid, HoldingRow(hid))
        d = ev.data
        h.party = str(d.get("party", h.party))
        if ev.kind == "holding.opened":
            h.openings += 1
        elif ev.kind == "holding.erased":
            h.erased = True
        elif ev.kind == "holding.remembered":
            h.rows = _int(d.get("rows"))
        elif ev.kind == "holding.request_refused":
            h.refused_requests += 1
        h.transfer = str(d.get("transfer", h.transfer))
        h.deadline = str(d.get("deadline", h.deadline))
        # Deletion or return is certified by a handler's signature: `holding.certified` with
        # data.kind "deleted" or "returned" (or the plain kinds holding.deleted/.returned).
        closed = HOLDING_CLOSED.get(ev.kind)
        if ev.kind == "holding.certified":
            closed = HOLDING_CLOSED.get(f"holding.{d.get('kind')}")
        if ev.kind == "holding.received":
            h.received_ns = ev.time_ns
            handlers = d.get("handlers")
            named = ", ".join(str(x) for x in handlers) if isinstance(handlers, list) else ""
            h.handler = str(ev.actor or d.get("handler") or named)
        elif closed is not None:
            method = d.get("method")
            h.closed = f"{closed} — {method}" if method else closed
            h.closed_ns = ev.time_ns
            h.closed_by = str(ev.actor or d.get("handler", ""))
        elif ev.kind == "holding.refused":
            h.closed, h.closed_ns = "受領拒否 (refused on arrival)", ev.time_ns
        elif ev.kind == "holding.overdue" and ev.time_ns >= self.report.period.start_ns:
            h.overdue_events += 1

    def _late(self, ev: Event) -> None:
        d = ev.data
        self.report.late.append(
            Late(
                ev.time_ns,
                str(d.get("flow", "")),
                str(d.get("period", "")),
                str(d.get("due", "")),
                str(d.get("transfer", "")),
                str(_mapping(d.get("reason")).get("message", "")),
                str(d.get("member", "")),
            )
        )


def when(ns: int | None) -> str:
    """A ledger time as `YYYY-MM-DD HH:MM` in JST, for people."""
    if ns is None:
        return "—"
    return f"{dt.datetime.fromtimestamp(ns // 1_000_000_000, JST):%Y-%m-%d %H:%M}"


def _day(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns // 1_000_000_000, JST).date().isoformat()


def _midnight_ns(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=JST).timestamp()) * 1_000_000_000


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
