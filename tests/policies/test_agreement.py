"""The agreement model: the three bundled 確認書 parse into what the seeds say, and every broken
key of an agreement file is refused with its key and a fix."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from policies.agreement_file import parse_agreement
from policies.calendar import Period
from policies.delegations import DelegationRegistry
from policies.errors import PolicyFileError
from policies.onward import reachable_parties
from tests.policies.bundled import BUNDLED_IDS, agreement, table


@pytest.mark.parametrize("agreement_id", BUNDLED_IDS)
def test_bundled_agreements_parse(agreement_id: str) -> None:
    parsed = agreement(agreement_id)
    assert parsed.id == agreement_id
    assert parsed.flows and parsed.datasets and parsed.parties
    for flow in parsed.flows:
        assert parsed.dataset_of(flow).my_number == "forbidden"


def test_demo_flow_keeps_its_shape() -> None:
    # The walking skeleton's demo and tests rely on these exact values.
    a = agreement("isa-nhi-status-loss")
    flow = a.flow("monthly")
    assert (flow.provider, flow.recipient, flow.dataset) == ("isa", "nhi-central", "status-change")
    assert flow.witnesses == 1 and flow.encryption == "zip-aes256"
    assert flow.onward == ("nhi-federations",)
    assert a.dataset_of(flow).header == (
        "氏名(英字)",
        "住居地(地方公共団体コード)",
        "住居地",
        "性別",
        "生年月日",
        "在留資格変更年月日",
    )
    assert a.dataset_of(flow).encodings == ("cp932", "utf-8", "utf-8-sig")


def test_seed_000_terms() -> None:
    a = agreement("isa-nhi-status-loss")
    assert a.legal_basis == "appi-61"
    assert a.references == ("入管庁政第24号", "保発0329第32号", "国保中発第152号")
    assert a.concluded == dt.date(2023, 3, 29) and a.valid_until is None
    assert [c.id for c in a.datasets["status-change"].categories] == [
        "kokuji-25",
        "kokuji-26",
        "kokuji-40",
        "kokuji-41",
    ]
    schedule = a.flow("monthly").schedule
    assert schedule.monthly and schedule.catch_up_from == dt.date(2022, 4, 1)
    assert schedule.first_period == Period(2023, 3)
    assert a.scope is not None and a.scope.outside == "split"
    assert a.delegations is not None and a.delegations.covers("131041", dt.date(2026, 1, 5))
    # 国保中央会 → 国保連合会 → 市町村, each with its contractors, nobody else.
    assert reachable_parties(a, "nhi-central") == ("nhi-federations", "municipalities")
    assert {a.role_of(p) for p in a.contractors} == {
        "nhi-central", "nhi-federations", "municipalities"}
    assert "nhi-federations-13" in a.contractors  # each member of a group, as its group


def test_seed_001_terms() -> None:
    a = agreement("isa-mhlw-specified-skilled")
    assert [f.id for f in a.flows] == ["monthly", "adhoc-notice"]
    monthly = a.flow("monthly")
    assert monthly.medium == "hand-delivered-media" and monthly.schedule.monthly
    assert len(a.datasets["specified-skilled"].categories) == 8
    assert a.datasets["specified-skilled"].category_column == "区分"
    notice = a.flow("adhoc-notice")
    assert (notice.provider, notice.schedule.every, notice.schedule.due, notice.medium) == (
        "regional-bureaus",
        "event",
        "without-delay",
        "post",
    )
    assert reachable_parties(a, "mhlw-pension") == ("jps", "jps-queried-municipalities", "j-lis")
    assert a.contractors == {"jps"}


def test_seed_003_terms() -> None:
    a = agreement("shinjuku-immigration-arrears")
    assert a.legal_basis == "appi-69-2-iii"
    assert a.basis_of(a.flow("provision")) == "appi-69-2-iii"
    assert (a.valid_from, a.valid_until) == (dt.date(2026, 6, 1), dt.date(2027, 3, 31))
    assert a.renewal is not None and a.renewal.every == "fiscal-year"
    provision = a.flow("provision")
    assert provision.encryption == "xlsx-password+zip-aes256" and provision.witnesses >= 1
    assert a.dataset_of(provision).format == "xlsx"
    assert len(a.dataset_of(provision).columns) == 10
    assert a.flow("answer").reply_to == "inquiry" and a.flow("inquiry").reply_to == "provision"
    assert a.onward_chain["tokyo-bureau"] == () and not a.contractors
    assert a.retention is not None and a.retention.then == "delete-or-return"
    assert a.report is not None and a.report.to == "shinjuku" and a.corrections
    assert {o.id for o in a.obligations if o.party == "tokyo-bureau"} == {
        "purpose-limit",
        "handlers-limited",
        "no-onward",
        "deletion-or-return",
        "report",
        "corrections",
        "security",
    }


@pytest.mark.parametrize(
    ("day", "in_force"),
    [
        (dt.date(2026, 5, 31), False),
        (dt.date(2026, 6, 1), True),
        (dt.date(2027, 3, 31), True),
        (dt.date(2027, 4, 1), False),
    ],
)
def test_seed_003_period_of_validity(day: dt.date, in_force: bool) -> None:
    assert agreement("shinjuku-immigration-arrears").in_force(day) is in_force


def test_a_recorded_renewal_extends_the_period_and_only_then() -> None:
    data = table("shinjuku-immigration-arrears.toml")
    data["renewal"]["renewed"] = [{"until": dt.date(2028, 3, 31), "decided": dt.date(2027, 3, 1)}]
    renewed = parse_agreement(data, "x")
    assert renewed.effective_until == dt.date(2028, 3, 31)
    assert renewed.in_force(dt.date(2027, 4, 1)) and not renewed.in_force(dt.date(2028, 4, 1))


def test_terms_cite_the_longest_matching_clause() -> None:
    a = agreement("isa-nhi-status-loss")
    assert a.clause("flows.monthly.schedule") is not None
    assert "最終業務日" in (a.clause("flows.monthly.schedule") or "")
    assert a.clause("flows.monthly.encryption") == a.clause("flows.monthly")
    assert a.clause("datasets.status-change.columns") == a.clause("datasets.status-change")
    assert a.clause("retention") is None
    reason = a.reason("x.rule", "message", "scope", row=3, column="c")
    assert reason.term == "isa-nhi-status-loss/scope" and reason.clause == a.clause("scope")
    assert reason.as_dict()["clause"] == a.clause("scope")


def test_delegations_must_belong_to_the_agreement() -> None:
    a = agreement("isa-nhi-status-loss", delegations=False)
    other = DelegationRegistry("another-agreement", ())
    with pytest.raises(ValueError, match="another-agreement"):
        a.with_delegations(other)
    with pytest.raises(ValueError, match="no \\[scope\\]"):
        agreement("shinjuku-immigration-arrears").with_delegations(other)


# --- broken files: each mutation names its key and a fix ----------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def apply(data: dict[str, Any]) -> None:
        node: Any = data
        parts = path.split("/")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        last = parts[-1]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return apply


_DELETE = object()
NHI = "isa-nhi-status-loss.toml"
SHINJUKU = "shinjuku-immigration-arrears.toml"
COLS = "datasets/status-change/columns"

BROKEN: list[tuple[str, str, Mutation, str]] = [
    # (file, what breaks, mutation, the key the problem must name)
    (NHI, "id missing", _set("id", _DELETE), "id"),
    (NHI, "id with a slash", _set("id", "../x"), "id"),
    (NHI, "unknown legal basis", _set("legal_basis", "gdpr"), "legal_basis"),
    (NHI, "no start date", lambda d: (d.pop("concluded"), d.pop("valid_from")), "valid_from"),
    (NHI, "ends before it starts", _set("valid_until", dt.date(2020, 1, 1)), "valid_until"),
    (NHI, "unknown top-level key", _set("terms", {}), "terms"),
    (NHI, "unknown party kind", _set("parties/isa/kind", "company"), "parties.isa.kind"),
    (
        NHI,
        "unknown role to designate",
        _set("parties/isa/designates", ["sign"]),
        "parties.isa.designates",
    ),
    (NHI, "flow from no party", _set("flows/0/from", "nobody"), "flows[0].from"),
    (NHI, "flow to itself", _set("flows/0/to", "isa"), "flows[0].to"),
    (NHI, "flow without dataset", _set("flows/0/dataset", "nothing"), "flows[0].dataset"),
    (NHI, "no witness", _set("flows/0/witnesses", 0), "flows[0].witnesses"),
    (NHI, "witnesses not a number", _set("flows/0/witnesses", True), "flows[0].witnesses"),
    (NHI, "unknown encryption", _set("flows/0/encryption", "rot13"), "flows[0].encryption"),
    (
        NHI,
        "workbook password on CSV",
        _set("flows/0/encryption", "xlsx-password+zip-aes256"),
        "flows[0].encryption",
    ),
    (
        NHI,
        "onward against the chain",
        _set("flows/0/onward", ["municipalities"]),
        "flows[0].onward",
    ),
    (NHI, "unknown flow kind", _set("flows/0/kind", "gift"), "flows[0].kind"),
    (NHI, "unknown medium", _set("flows/0/medium", "pigeon"), "flows[0].medium"),
    (NHI, "unknown flow key", _set("flows/0/priority", 1), "flows[0].priority"),
    (
        NHI,
        "unknown schedule",
        _set("flows/0/schedule/every", "fortnight"),
        "flows[0].schedule.every",
    ),
    (NHI, "unknown due rule", _set("flows/0/schedule/due", "whenever"), "flows[0].schedule.due"),
    (
        NHI,
        "bad first period",
        _set("flows/0/schedule/first_period", "2023-13"),
        "flows[0].schedule.first_period",
    ),
    (
        NHI,
        "catch-up after the first period",
        _set("flows/0/schedule/catch_up_from", dt.date(2024, 1, 1)),
        "flows[0].schedule.catch_up_from",
    ),
    (NHI, "duplicate flow id", lambda d: d["flows"].append(dict(d["flows"][0])), "flows[3].id"),
    (
        NHI,
        "unknown format",
        _set("datasets/status-change/format", "pdf"),
        "datasets.status-change.format",
    ),
    (
        NHI,
        "unknown encoding",
        _set("datasets/status-change/encodings", ["latin-1"]),
        "datasets.status-change.encodings",
    ),
    (
        NHI,
        "My Number allowed",
        _set("datasets/status-change/my_number", "allowed"),
        "datasets.status-change.my_number",
    ),
    (
        NHI,
        "unknown column type",
        _set(f"{COLS}/1/type", "postcode"),
        "datasets.status-change.columns[1].type",
    ),
    (
        NHI,
        "duplicate column after NFKC",
        _set(f"{COLS}/3/name", "氏名（英字）"),
        "datasets.status-change.columns[3].name",
    ),
    (
        NHI,
        "zero max length",
        _set(f"{COLS}/2/max_length", 0),
        "datasets.status-change.columns[2].max_length",
    ),
    (
        NHI,
        "event date not a date",
        _set("datasets/status-change/event_date_column", "住居地"),
        "datasets.status-change.event_date_column",
    ),
    (
        NHI,
        "duplicate category",
        lambda d: d["datasets"]["status-change"]["categories"].append(
            {"id": "kokuji-25", "name": "x"}
        ),
        "datasets.status-change.categories[4].id",
    ),
    (NHI, "scope on a text column", _set("scope/column", "住居地"), "scope.column"),
    (NHI, "unknown scope outcome", _set("scope/outside", "ignore"), "scope.outside"),
    (
        NHI,
        "registry outside the folder",
        _set("scope/registry", "../../etc/x.toml"),
        "scope.registry",
    ),
    (NHI, "scope on no flow", _set("scope/flows", ["weekly"]), "scope.flows"),
    (NHI, "row date without column", _set("scope/as_of", "row"), "scope.date_column"),
    (
        NHI,
        "split on a workbook",
        lambda d: (
            d["datasets"]["status-change"].update(format="xlsx", encodings=None)
            or d["datasets"]["status-change"].pop("encodings")
        ),
        "scope.outside",
    ),
    (
        NHI,
        "chain to no party",
        _set("onward/chain/nhi-central", ["nobody"]),
        "onward.chain.nhi-central",
    ),
    (NHI, "contractors of no party", _set("onward/contractors", ["nobody"]), "onward.contractors"),
    (NHI, "unknown obligation", _set("obligations/0/id", "smile"), "obligations[0].id"),
    (NHI, "obligation of no party", _set("obligations/0/party", "nobody"), "obligations[0].party"),
    (NHI, "clause of no term", _set("clauses/flows.weekly", "x"), "clauses.flows.weekly"),
    (
        SHINJUKU,
        "renewal with a gap",
        _set("renewal/renewed", [{"until": dt.date(2028, 3, 30)}]),
        "renewal.renewed[0].until",
    ),
    (SHINJUKU, "renewal of an open-ended agreement", _set("valid_until", _DELETE), "renewal"),
    (SHINJUKU, "unknown renewal", _set("renewal/every", "decade"), "renewal.every"),
    (SHINJUKU, "report obligation without report", _set("report", _DELETE), "obligations[4].id"),
    (
        SHINJUKU,
        "no-onward obligation with a chain",
        _set("onward/chain/tokyo-bureau", ["shinjuku"]),
        "obligations[2].id",
    ),
    (
        SHINJUKU,
        "corrections obligation without corrections",
        _set("corrections", False),
        "obligations[5].id",
    ),
    (
        SHINJUKU,
        "deletion obligation without retention",
        _set("retention", _DELETE),
        "obligations[3].id",
    ),
    (
        SHINJUKU,
        "handlers obligation without designation",
        _set("parties/tokyo-bureau/designates", []),
        "obligations[1].id",
    ),
    (
        SHINJUKU,
        "answer replying the wrong way",
        _set("flows/2/reply_to", "provision"),
        "flows[2].reply_to",
    ),
    (SHINJUKU, "answer to nothing", _set("flows/2/reply_to", _DELETE), "flows[2].reply_to"),
    (SHINJUKU, "report to no party", _set("report/to", "nobody"), "report.to"),
    (SHINJUKU, "unknown retention", _set("retention/then", "shred"), "retention.then"),
    (SHINJUKU, "negative retention days", _set("retention/max_days", -1), "retention.max_days"),
    (
        SHINJUKU,
        "encodings on a workbook",
        _set("datasets/arrears/encodings", ["cp932"]),
        "datasets.arrears.encodings",
    ),
    (
        SHINJUKU,
        "answer flow on a schedule",
        _set("flows/2/schedule", {"every": "request", "due": "without-delay"}),
        "flows[2].schedule.due",
    ),
]


@pytest.mark.parametrize(("name", "what", "mutate", "key"), BROKEN, ids=[b[1] for b in BROKEN])
def test_a_broken_agreement_names_the_key_and_a_fix(
    name: str, what: str, mutate: Mutation, key: str
) -> None:
    data = table(name)
    parse_agreement(table(name), name)  # the unbroken file is valid
    mutate(data)
    with pytest.raises(PolicyFileError) as caught:
        parse_agreement(data, name)
    keys = [p.key for p in caught.value.problems]
    assert key in keys, (what, keys)
    for problem in caught.value.problems:
        assert problem.source == name and problem.fix and problem.message
        assert problem.key in str(problem) and problem.fix in str(problem)


def test_all_problems_are_reported_at_once() -> None:
    data = table(NHI)
    data["legal_basis"] = "?"
    data["flows"][0]["witnesses"] = 0
    data["datasets"]["status-change"]["columns"][0]["type"] = "?"
    with pytest.raises(PolicyFileError) as caught:
        parse_agreement(data, NHI)
    assert {"legal_basis", "flows[0].witnesses", "datasets.status-change.columns[0].type"} <= {
        p.key for p in caught.value.problems
    }
    assert "(and 2 more)" in str(caught.value)


@pytest.mark.parametrize(
    "garbage",
    [
        {},
        {"flows": "x"},
        {"parties": [], "datasets": 3},
        {"id": 5, "flows": [1, None], "datasets": {"x": []}},
    ],
)
def test_garbage_tables_are_refused_not_crashed(garbage: dict[str, Any]) -> None:
    with pytest.raises(PolicyFileError):
        parse_agreement(garbage, "garbage")


# --- fuzz: any value anywhere gives a valid agreement or a PolicyFileError, never a crash --------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.text(max_size=8),
    st.dates(),
    st.just("isa"),
    st.just("monthly"),
    st.just("csv"),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@pytest.mark.parametrize("name", [f"{i}.toml" for i in BUNDLED_IDS])
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_anywhere_is_refused_cleanly(name: str, data: st.DataObject) -> None:
    table_ = table(name)
    path = data.draw(st.sampled_from(_paths(table_)))
    node: Any = table_
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = data.draw(_VALUES)
    try:
        parse_agreement(table_, name)
    except PolicyFileError as exc:
        assert exc.problems
