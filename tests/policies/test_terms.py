"""For each term of an agreement, a case that breaks it, and the decision that names it.

Each row builds a situation that violates one term and asserts the decision cites exactly that
term (`AGREEMENT/KEY`). Terms about a recipient's own conduct that no transfer can break
(purpose, report, security) are checked in the agreement file instead (test_agreement).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable

import openpyxl
import pytest

from policies.admission import applied_terms, check_period, check_reply, find_sender
from policies.agreement import Agreement
from policies.agreement_file import parse_agreement
from policies.approvals import witness_refusal
from policies.content import check_file
from policies.designations import check_designations
from policies.handlers import Handler, Registry
from policies.onward import onward_refusal
from policies.reasons import Reason
from policies.retention import disposal_deadline, disposal_refusal, overdue_holding
from policies.schedule import overdue_periods
from tests.policies.bundled import agreement, table

NHI = agreement("isa-nhi-status-loss")
SKILLED = agreement("isa-mhlw-specified-skilled")
SHINJUKU = agreement("shinjuku-immigration-arrears")
ON = dt.date(2026, 11, 20)
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0000000000000000000"


def handler(
    name: str, party: str, roles: set[str], agreement_id: str = NHI.id, key_suffix: str = ""
) -> Handler:
    return Handler(
        name=name,
        party=party,
        roles=frozenset(roles),
        public_key=KEY + key_suffix,
        agreements=frozenset({agreement_id}),
        designated_from=dt.date(2023, 3, 29),
        os_user=name,
    )


REGISTRY = Registry(
    (
        handler("sato", "isa", {"send"}),
        handler("suzuki", "isa", {"witness"}, key_suffix="1"),
        handler("takahashi", "nhi-central", {"receive"}, key_suffix="2"),
    )
)


def _csv(*rows: str) -> bytes:
    header = "氏名(英字),住居地(地方公共団体コード),住居地,性別,生年月日,在留資格変更年月日"
    return ("\r\n".join([header, *rows]) + "\r\n").encode("utf-8")


ROW = "TEST TARO,131041,東京都新宿区サンプル町1-1,1,1990/04/01,令和8年10月1日"


def _nhi_file(data: bytes, a: Agreement = NHI) -> Reason:
    verdict = check_file(io.BytesIO(data), a, a.flow("monthly"), ON)
    assert verdict.reasons, verdict
    return verdict.reasons[0]


def _rejected_scope() -> Reason:
    data = table("isa-nhi-status-loss.toml")
    data["scope"]["outside"] = "reject"
    assert NHI.delegations is not None
    strict = parse_agreement(data, "x").with_delegations(NHI.delegations)
    return _nhi_file(_csv(ROW.replace("131041", "271004")), strict)


def _withheld() -> Reason:
    verdict = check_file(
        io.BytesIO(_csv(ROW, ROW.replace("131041", "271004"))), NHI, NHI.flow("monthly"), ON
    )
    assert verdict.accepted
    return verdict.notices[0]


def _xlsx_workbook_wanted() -> Reason:
    verdict = check_file(
        io.BytesIO(_csv(ROW)), SHINJUKU, SHINJUKU.flow("provision"), dt.date(2026, 7, 1)
    )
    return verdict.reasons[0]


def _encrypted_workbook() -> Reason:
    ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    verdict = check_file(
        io.BytesIO(ole2), SHINJUKU, SHINJUKU.flow("provision"), dt.date(2026, 7, 1)
    )
    return verdict.reasons[0]


def _wrong_category() -> Reason:
    header = [c.name for c in SKILLED.datasets["specified-skilled"].columns]
    row = [
        "0",
        "2026-10-01",
        "TEST TARO",
        "ベトナム",
        "1995-05-05",
        "1",
        "特定技能1号",
        "1年",
        "2027-10-01",
        "東京都",
        "介護",
        "AB12345678CD",
    ]
    data = ("\r\n".join([",".join(header), ",".join(row)]) + "\r\n").encode("utf-8")
    return check_file(io.BytesIO(data), SKILLED, SKILLED.flow("monthly"), ON).reasons[0]


def _workbook_with_my_number() -> Reason:
    book = openpyxl.Workbook()
    book.active.append([c.name for c in SHINJUKU.datasets["resolved"].columns])
    book.active.append(
        ["TEST TARO", None, "1990-04-01", "ベトナム", "AB12345678CD", "123456789018"]
    )
    out = io.BytesIO()
    book.save(out)
    flow = SHINJUKU.flow("resolved")
    return check_file(io.BytesIO(out.getvalue()), SHINJUKU, flow, dt.date(2026, 7, 1)).reasons[0]


def _late() -> Reason:
    return overdue_periods(NHI, NHI.flow("monthly"), set(), ON, since=dt.date(2026, 10, 1))[
        0
    ].reason


def _sender() -> Reason:
    found = find_sender(REGISTRY, NHI, NHI.flow("monthly"), "takahashi", ON)
    assert isinstance(found, Reason)
    return found


def _witness() -> Reason:
    sato = REGISTRY.by_name("sato")
    refusal = witness_refusal(NHI, NHI.flow("monthly"), sato, "sato", (), ON)
    assert refusal is not None
    return refusal


def _some(reason: Reason | None) -> Reason:
    assert reason is not None
    return reason


def _retention_variant(**retention: object) -> Agreement:
    data = table("shinjuku-immigration-arrears.toml")
    data["retention"].update(retention)
    return parse_agreement(data, "x")


TERMS: list[tuple[str, Callable[[], Reason], str, str]] = [
    # (what breaks, the decision, its rule, the term it must cite)
    (
        "provided after the period of validity",
        lambda: _some(check_period(SHINJUKU, dt.date(2027, 4, 1))),
        "agreement.out-of-term",
        "shinjuku-immigration-arrears/valid_from..valid_until",
    ),
    (
        "provided before the agreement applies",
        lambda: _some(check_period(NHI, dt.date(2023, 3, 28))),
        "agreement.out-of-term",
        "isa-nhi-status-loss/valid_from..valid_until",
    ),
    (
        "sent by someone not designated",
        _sender,
        "sender.not-designated",
        "isa-nhi-status-loss/flows.monthly.from",
    ),
    (
        "witnessed by the sender",
        _witness,
        "approval.self",
        "isa-nhi-status-loss/flows.monthly.witnesses",
    ),
    (
        "a column the agreement does not list",
        lambda: _nhi_file(
            _csv().replace("在留資格変更年月日".encode(), "在留資格変更年月日,備考".encode())
        ),
        "content.header.extra",
        "isa-nhi-status-loss/datasets.status-change.columns",
    ),
    (
        "a value of the wrong type",
        lambda: _nhi_file(_csv(ROW.replace("131041", "131042"))),
        "value.local-government-code",
        "isa-nhi-status-loss/datasets.status-change.columns",
    ),
    # 0x81 0x20: a cp932 lead byte without its trail byte, and not UTF-8 either.
    (
        "an encoding the agreement does not allow",
        lambda: _nhi_file(_csv(ROW) + b"\x81\x20"),
        "content.encoding",
        "isa-nhi-status-loss/datasets.status-change.encodings",
    ),
    (
        "My Number data",
        lambda: _nhi_file(_csv(ROW.replace("サンプル町", "123456789018 "))),
        "content.my-number",
        "isa-nhi-status-loss/datasets.status-change.my_number",
    ),
    (
        "My Number in a workbook",
        _workbook_with_my_number,
        "content.my-number",
        "shinjuku-immigration-arrears/datasets.resolved.my_number",
    ),
    (
        "a category the agreement does not have",
        _wrong_category,
        "value.category",
        "isa-mhlw-specified-skilled/datasets.specified-skilled.categories",
    ),
    (
        "a CSV where the agreement wants Excel",
        _xlsx_workbook_wanted,
        "content.xlsx.not-xlsx",
        "shinjuku-immigration-arrears/datasets.arrears.format",
    ),
    (
        "a workbook already password-protected",
        _encrypted_workbook,
        "content.xlsx.encrypted",
        "shinjuku-immigration-arrears/datasets.arrears.format",
    ),
    (
        "a municipality without a 委任状 (reject)",
        _rejected_scope,
        "scope.not-delegated",
        "isa-nhi-status-loss/scope",
    ),
    (
        "a municipality without a 委任状 (split)",
        _withheld,
        "scope.withheld",
        "isa-nhi-status-loss/scope",
    ),
    (
        "the registry of 委任状 missing",
        lambda: _nhi_file(_csv(ROW), agreement("isa-nhi-status-loss", delegations=False)),
        "scope.no-registry",
        "isa-nhi-status-loss/scope",
    ),
    (
        "data older than the catch-up date",
        lambda: _nhi_file(_csv(ROW.replace("令和8年10月1日", "2022-03-31"))),
        "schedule.before-catch-up",
        "isa-nhi-status-loss/flows.monthly.schedule",
    ),
    (
        "a monthly provision not delivered by its due date",
        _late,
        "schedule.late",
        "isa-nhi-status-loss/flows.monthly.schedule",
    ),
    (
        "passed on beyond the chain",
        lambda: _some(onward_refusal(NHI, "nhi-central", "municipalities")),
        "onward.forbidden",
        "isa-nhi-status-loss/onward.chain.nhi-central",
    ),
    (
        "passed on by a recipient that may pass it to nobody",
        lambda: _some(onward_refusal(SHINJUKU, "tokyo-bureau", "shinjuku")),
        "onward.forbidden",
        "shinjuku-immigration-arrears/onward.chain.tokyo-bureau",
    ),
    (
        "entrusted to a contractor where none is allowed",
        lambda: _some(onward_refusal(SHINJUKU, "tokyo-bureau", "x", to_contractor=True)),
        "onward.contractor",
        "shinjuku-immigration-arrears/onward.contractors",
    ),
    (
        "passed on by a party that holds nothing",
        lambda: _some(onward_refusal(NHI, "stranger", "isa")),
        "onward.unknown-holder",
        "isa-nhi-status-loss/onward",
    ),
    (
        "an answer linked to no inquiry",
        lambda: _some(check_reply(SHINJUKU, SHINJUKU.flow("answer"), None)),
        "reply.unlinked",
        "shinjuku-immigration-arrears/flows.answer.reply_to",
    ),
    (
        "an answer linked to the wrong flow",
        lambda: _some(check_reply(SHINJUKU, SHINJUKU.flow("answer"), SHINJUKU.flow("provision"))),
        "reply.unlinked",
        "shinjuku-immigration-arrears/flows.answer.reply_to",
    ),
    (
        "kept past the retention deadline",
        lambda: _some(
            overdue_holding(
                _retention_variant(max_days=30), dt.date(2026, 7, 1), dt.date(2026, 8, 1)
            )
        ),
        "retention.overdue",
        "shinjuku-immigration-arrears/retention",
    ),
    (
        "deleted where it must be returned",
        lambda: _some(
            disposal_refusal(_retention_variant(then="return"), "delete", certified=True)
        ),
        "retention.method",
        "shinjuku-immigration-arrears/retention.then",
    ),
    (
        "disposed of without the certificate",
        lambda: _some(disposal_refusal(SHINJUKU, "delete", certified=False)),
        "retention.certificate",
        "shinjuku-immigration-arrears/retention.certificate",
    ),
]


@pytest.mark.parametrize(("what", "decide", "rule", "term"), TERMS, ids=[t[0] for t in TERMS])
def test_breaking_a_term_gives_a_decision_that_names_it(
    what: str, decide: Callable[[], Reason], rule: str, term: str
) -> None:
    reason = decide()
    assert (reason.rule, reason.term) == (rule, term), what
    assert reason.message
    assert term in str(reason)


def test_clauses_are_cited_where_the_agreement_states_them() -> None:
    assert _rejected_scope().clause == NHI.clause("scope")
    assert _late().clause == NHI.clause("flows.monthly.schedule")
    assert _some(check_period(SHINJUKU, dt.date(2027, 4, 1))).clause == SHINJUKU.clause(
        "valid_from..valid_until"
    )
    assert "renew" in _some(check_period(SHINJUKU, dt.date(2027, 4, 1))).message


def test_keeping_the_terms_gives_no_refusal() -> None:
    assert check_period(SHINJUKU, dt.date(2027, 3, 31)) is None
    assert isinstance(find_sender(REGISTRY, NHI, NHI.flow("monthly"), "sato", ON), Handler)
    assert onward_refusal(NHI, "nhi-central", "nhi-federations") is None
    assert onward_refusal(NHI, "municipalities", "x", to_contractor=True) is None
    assert check_reply(SHINJUKU, SHINJUKU.flow("answer"), SHINJUKU.flow("inquiry")) is None
    assert check_reply(NHI, NHI.flow("monthly"), None) is None
    assert overdue_holding(SHINJUKU, dt.date(2026, 7, 1), dt.date(2030, 1, 1)) is None
    assert disposal_deadline(SHINJUKU, dt.date(2026, 7, 1)) is None  # the seed sets no days
    assert disposal_refusal(SHINJUKU, "return", certified=True) is None


def test_deadline_at_the_end_of_validity() -> None:
    ending = _retention_variant(after="validity-end")
    assert disposal_deadline(ending, dt.date(2026, 7, 1)) == dt.date(2027, 3, 31)
    both = _retention_variant(after="validity-end", max_days=30)
    assert disposal_deadline(both, dt.date(2027, 3, 20)) == dt.date(2027, 3, 31)
    assert disposal_deadline(both, dt.date(2026, 7, 1)) == dt.date(2026, 7, 31)


def test_accepted_transfers_cite_their_terms_too() -> None:
    terms = applied_terms(SHINJUKU, SHINJUKU.flow("answer"))
    assert "shinjuku-immigration-arrears/legal_basis" in terms
    assert "shinjuku-immigration-arrears/flows.answer.reply_to" in terms
    assert "shinjuku-immigration-arrears/renewal" in terms


# --- designations (取扱者の指定) against the agreements --------------------------------------


def test_a_designation_must_fit_the_agreement() -> None:
    registry = Registry(
        (
            handler("stranger", "tokyo-bureau", {"send"}),  # not a party of NHI
            handler("receiver", "mhlw-insurance", {"witness"}, key_suffix="3"),  # provides nothing
            handler("sender", "isa", {"receive"}, key_suffix="4"),  # receives nothing
        )
    )
    errors, _warnings = check_designations({NHI.id: NHI}, registry, "registry.toml", ON, "isa")
    assert [e.key for e in errors] == [
        "handlers.stranger.party",
        "handlers.receiver.roles",
        "handlers.sender.roles",
    ]
    assert all(e.fix for e in errors)


def test_missing_senders_and_witnesses_are_warned_about() -> None:
    lonely = Registry((handler("sato", "isa", {"send"}),))
    errors, warnings = check_designations({NHI.id: NHI}, lonely, "registry.toml", ON, "isa")
    assert not errors
    assert any("witness" in w for w in warnings)
    assert any("取扱者の指定" in w for w in warnings)  # isa designates witnesses
    errors, warnings = check_designations({NHI.id: NHI}, REGISTRY, "registry.toml", ON, "isa")
    assert not errors and not warnings
