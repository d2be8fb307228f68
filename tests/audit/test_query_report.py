"""Queries and the handling report (取扱状況報告), from synthetic events of every kind."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from audit.checkpoints import JST
from audit.events import Draft
from audit.ledger import Ledger
from audit.query import Query, parse_when, search
from audit.report import Period, build
from audit.report_render import html_page, markdown
from tests.audit.ledgers import digest


def at(day: str, hour: int = 10) -> int:
    d = dt.date.fromisoformat(day)
    return int(dt.datetime(d.year, d.month, d.day, hour, tzinfo=JST).timestamp()) * 10**9


def ev(
    event_kind: str,
    subject: str,
    when: int,
    actor: str | None = None,
    agreement: str = "agreement-a",
    **data: Any,
) -> Draft:
    return Draft(
        key=f"{subject}:{event_kind}:{when}",
        kind=event_kind,
        time_ns=when,
        subject=subject,
        agreement=agreement,
        actor=actor,
        data={"flow": "monthly", "provider": "party-p", "recipient": "party-r", **data},
    )


def story() -> list[Draft]:
    """A quarter of a flow: one delivered transfer, one rejected, one refused approval, one
    waiting, a late provision, and holdings deleted in time, deleted late and never."""
    return [
        ev("transfer.dropped", "t-1", at("2026-10-05"), file_name="a.csv", owner="os-user"),
        ev("transfer.quarantined", "t-1", at("2026-10-05"), size=10, sha256=digest(1)),
        ev(
            "transfer.checked",
            "t-1",
            at("2026-10-05"),
            "handler-s",
            sender="handler-s",
            rows=2,
            sha256=digest(1),
            witnesses_required=1,
        ),
        ev(
            "approval.refused",
            "t-1",
            at("2026-10-06"),
            "outsider",
            reason={"rule": "approval.not-designated", "message": "not a witness"},
            signer="outsider",
        ),
        ev(
            "approval.accepted",
            "t-1",
            at("2026-10-06"),
            "handler-w",
            witness="handler-w",
            sha256=digest(1),
        ),
        ev("transfer.approved", "t-1", at("2026-10-06"), witnesses=["handler-w"]),
        ev(
            "transfer.delivered",
            "t-1",
            at("2026-10-06"),
            sealed_sha256=digest(9),
            late=True,
            due="2026-10-01",
            period="2026-09",
        ),
        ev("transfer.dropped", "t-2", at("2026-11-01"), file_name="b.csv"),
        ev(
            "transfer.rejected",
            "t-2",
            at("2026-11-01"),
            stage="quarantined",
            reasons=[
                {
                    "rule": "content.extra-column",
                    "message": "an extra column",
                    "term": "agreement-a/datasets.x",
                    "column": 7,
                }
            ],
        ),
        ev("transfer.dropped", "t-3", at("2026-12-20"), file_name="c.csv"),
        ev(
            "transfer.checked",
            "t-3",
            at("2026-12-20"),
            "handler-s",
            sender="handler-s",
            rows=5,
            sha256=digest(3),
        ),
        ev(
            "holding.received",
            "h-1",
            at("2026-10-07"),
            "handler-r",
            transfer="t-1",
            deadline="2026-11-30",
        ),
        ev("holding.deleted", "h-1", at("2026-11-20"), "handler-r", transfer="t-1"),
        ev(
            "holding.received",
            "h-2",
            at("2026-10-07"),
            "handler-r",
            transfer="t-1",
            deadline="2026-10-31",
        ),
        ev(
            "holding.certified",
            "h-2",
            at("2026-11-03"),
            "handler-r",
            transfer="t-1",
            kind="deleted",
            method="shredded",
            handler="handler-r",
        ),
        ev("holding.received", "h-4", at("2026-10-08"), transfer="t-1", deadline="2026-10-20"),
        ev("holding.refused", "h-4", at("2026-10-08"), transfer="t-1"),
        ev(
            "holding.received",
            "h-3",
            at("2026-10-07"),
            "handler-r",
            transfer="t-1",
            deadline="2026-12-01",
        ),
        ev("transfer.dropped", "t-9", at("2027-01-10"), file_name="later.csv"),
        ev(
            "late",
            "agreement-a/monthly",
            at("2026-12-01"),
            period="2026-10",
            due="2026-11-27",
            reason={"rule": "schedule.late", "message": "nothing delivered by the due day"},
        ),
        ev(
            "transfer.dropped",
            "t-x",
            at("2026-10-05"),
            agreement="agreement-b",
            file_name="other.csv",
        ),
    ]


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger.open(tmp_path / "l.db")
    ledger.append(story())
    return ledger


def keys(ledger: Ledger, **q: Any) -> list[str]:
    return [e.key.split(":")[1] + "@" + (e.subject or "") for e in search(ledger, Query(**q))]


def test_queries_filter_by_each_field(ledger: Ledger) -> None:
    assert len(keys(ledger, agreement="agreement-b")) == 1
    assert keys(ledger, person="handler-w") == ["approval.accepted@t-1"]
    assert keys(ledger, kind="holding.*") == [
        "holding.received@h-1",
        "holding.deleted@h-1",
        "holding.received@h-2",
        "holding.certified@h-2",
        "holding.received@h-4",
        "holding.refused@h-4",
        "holding.received@h-3",
    ]
    assert keys(ledger, sha256=digest(3)) == ["transfer.checked@t-3"]
    assert keys(ledger, sha256=digest(9)) == ["transfer.delivered@t-1"]
    assert len(keys(ledger, party="party-r")) == len(story())
    assert keys(ledger, party="party-z") == []
    assert keys(ledger, subject="t-2") == ["transfer.dropped@t-2", "transfer.rejected@t-2"]
    assert keys(ledger, since_ns=parse_when("2027-01-01")) == ["transfer.dropped@t-9"]
    assert len(keys(ledger, until_ns=parse_when("2026-10-05", end=True))) == 4
    assert len(keys(ledger, agreement="agreement-a", limit=3)) == 3


def test_a_query_never_returns_an_event_whose_bytes_do_not_match(
    ledger: Ledger, tmp_path: Path
) -> None:
    from tests.audit.ledgers import attack

    ledger.close()
    attack(tmp_path / "l.db", "UPDATE ledger_events SET actor = 'handler-w' WHERE seq = 0")
    again = Ledger.open(tmp_path / "l.db", snapshot=True)
    assert keys(again, person="handler-w") == ["approval.accepted@t-1"]


@pytest.mark.parametrize(
    "text, start, end, label",
    [
        ("2026-10", "2026-10-01", "2026-11-01", "2026年10月"),
        ("2026-12", "2026-12-01", "2027-01-01", "2026年12月"),
        ("2026-Q1", "2026-04-01", "2026-07-01", "2026年度 第1四半期"),
        ("2026-Q3", "2026-10-01", "2027-01-01", "2026年度 第3四半期"),
        ("2026-Q4", "2027-01-01", "2027-04-01", "2026年度 第4四半期"),
        ("2026", "2026-04-01", "2027-04-01", "2026年度"),
    ],
)
def test_periods_are_fiscal_and_in_jst(text: str, start: str, end: str, label: str) -> None:
    p = Period.parse(text)
    assert (p.start.isoformat(), p.end.isoformat(), p.label) == (start, end, label)
    assert p.start_ns == at(start, 0)


@pytest.mark.parametrize("text", ["2026-13", "2026-Q5", "26-01", "2026-1", ""])
def test_bad_periods_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Period.parse(text)


def test_the_quarterly_report_says_what_happened(ledger: Ledger) -> None:
    report = build(
        ledger,
        "agreement-a",
        Period.parse("2026-Q3"),
        now_ns=at("2027-01-05"),
        verification=ledger.verify(),
    )
    assert [t.id for t in report.transfers] == ["t-1", "t-2", "t-3"]
    t1 = report.transfers[0]
    assert (t1.sender, t1.witnesses, t1.rows, t1.provider, t1.recipient) == (
        "handler-s",
        ["handler-w"],
        2,
        "party-p",
        "party-r",
    )
    assert [t.id for t in report.delivered()] == ["t-1"]
    assert [(r.transfer, r.rule, r.term) for r in report.rejections] == [
        ("t-2", "content.extra-column", "agreement-a/datasets.x")
    ]
    assert [(r.transfer, r.signer) for r in report.refusals] == [("t-1", "outsider")]
    assert [(x.transfer, x.due) for x in report.late] == [("t-1", "2026-10-01"), ("", "2026-11-27")]
    assert {h.id for h in report.overdue_holdings()} == {"h-2", "h-3"}
    assert {h.id: h.closed for h in report.holdings}["h-4"].startswith("受領拒否")
    assert [t.id for t in report.open_transfers()] == ["t-3"]
    text = markdown(report)
    for needle in (
        "取扱状況報告",
        "2026年度 第3四半期",
        "2026-10-01 〜 2026-12-31",
        "handler-w",
        "content.extra-column",
        "agreement-a/datasets.x",
        "保有 h-3",
        "消去・返却の記録なし",
        "転送 t-3",
        "nothing delivered by the due day",
    ):
        assert needle in text
    assert "t-9" not in text and "other.csv" not in text and "t-x" not in text
    assert "署名付きチェックポイントを信頼できる公開鍵で確認していません" in text


def test_html_report_escapes_everything(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "l.db")
    ledger.append(
        [
            ev(
                "transfer.rejected",
                "t-1",
                at("2026-10-05"),
                stage="x",
                reasons=[{"rule": "r", "message": "<script>alert(1)</script> & |"}],
            )
        ]
    )
    page = html_page(
        build(ledger, "agreement-a", Period.parse("2026-10"), now_ns=0, verification=None)
    )
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.startswith("<!DOCTYPE html>") and "行っていません" in page
    md = markdown(
        build(ledger, "agreement-a", Period.parse("2026-10"), now_ns=0, verification=None)
    )
    assert "\\|" in md


def test_the_report_counts_expired_transfers_and_duplicate_notices(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "l.db")
    dup = {"rule": "approval.duplicate-file", "message": "the same bytes were delivered"}
    ledger.append([
        # t-1: never approved, expired by the approval window (承認期限切れ) in the period.
        ev("transfer.checked", "t-1", at("2026-10-05"), "handler-s", sender="handler-s"),
        ev("transfer.expired", "t-1", at("2026-10-08"), "handler-s", required=1),
        # t-2: the same bytes again; one witness is held by the notice, another approves anyway.
        ev("transfer.checked", "t-2", at("2026-11-02"), "handler-s", sender="handler-s"),
        ev("approval.refused", "t-2", at("2026-11-02", 11), "handler-w", reason=dup),
        ev("approval.accepted", "t-2", at("2026-11-03"), "handler-x", witness="handler-x",
           duplicate_of="t-0", duplicate_ok=True),
        # t-3: approved without a notice; t-4 expired after the period ended.
        ev("approval.accepted", "t-3", at("2026-11-04"), "handler-x", witness="handler-x"),
        ev("transfer.checked", "t-4", at("2026-12-30"), "handler-s", sender="handler-s"),
        ev("transfer.expired", "t-4", at("2027-01-02"), "handler-s", required=1),
    ])
    report = build(ledger, "agreement-a", Period.parse("2026-Q3"), now_ns=at("2027-01-05"),
                   verification=None)
    assert [t.id for t in report.expired()] == ["t-1"]
    assert [t.id for t in report.duplicates()] == ["t-2"]
    assert report.duplicates()[0].duplicate_of == "t-0"
    assert {t.id: t.state for t in report.transfers}["t-1"] == "承認期限切れ (expired)"
    text = markdown(report)
    assert "| 承認期限切れ (transfers expired unapproved) | 1 |" in text
    assert "| 重複送信の確認 (duplicate notices: bytes already delivered) | 1 |" in text


def test_a_transfer_sent_back_to_its_witnesses_is_awaiting_approval_again(
    tmp_path: Path,
) -> None:
    ledger = Ledger.open(tmp_path / "l.db")
    ledger.append([
        ev("transfer.checked", "t-2", at("2026-11-02"), "handler-s", sender="handler-s"),
        ev("approval.accepted", "t-2", at("2026-11-03"), "handler-x", witness="handler-x"),
        ev("transfer.approved", "t-2", at("2026-11-03", 11), witnesses=["handler-x"]),
        ev("approval.voided", "t-2", at("2026-11-03", 12), rule="approval.duplicate-appeared",
           duplicate_of="t-1", set_aside=[{"witness": "handler-x", "fingerprint": "SHA256:x"}]),
    ])
    report = build(ledger, "agreement-a", Period.parse("2026-Q3"), now_ns=at("2027-01-05"),
                   verification=None)
    (row,) = report.transfers
    assert row.state == "承認待ち (awaiting approval)" and row.witnesses == []
    assert [t.id for t in report.duplicates()] == ["t-2"] and row.duplicate_of == "t-1"
    assert [t.id for t in report.open_transfers()] == ["t-2"]
