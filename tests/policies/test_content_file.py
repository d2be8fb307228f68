"""check_file: CSV and XLSX content against every content term of the bundled agreements —
data items, encodings, values, My Number, categories, the delegation scope (reject or split, with
exact byte spans) and the catch-up bound. Synthetic values only."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.agreement import Agreement
from policies.agreement_file import parse_agreement
from policies.content import MAX_REASONS, check_csv, check_file
from policies.reasons import Verdict
from tests.conftest import COLUMNS
from tests.policies.bundled import agreement, table

NHI = agreement("isa-nhi-status-loss")
SKILLED = agreement("isa-mhlw-specified-skilled")
SHINJUKU = agreement("shinjuku-immigration-arrears")
ON = dt.date(2026, 11, 20)
HEADER = list(COLUMNS)
TARO = ["TEST TARO", "131041", "東京都新宿区サンプル町1-1", "1", "1990/04/01", "令和8年10月1日"]
HANAKO = ["SAMPLE HANAKO", "141003", "神奈川県横浜市テスト区2-2", "女", "1985-12-24", "R8.10.15"]
WARD = ["SAMPLE JIRO", "141011", "神奈川県横浜市鶴見区テスト3-3", "2", "20000101", "2026-10-20"]
OSAKA = ["TEST SABURO", "271004", "大阪府大阪市テスト4-4", "1", "1970-01-01", "2026-10-02"]
KOBE = ["TEST SHIRO", "281000", "兵庫県神戸市テスト5-5", "9", "1999-09-09", "2026-10-03"]


def csv_bytes(
    *rows: list[str], encoding: str = "cp932", ending: str = "\r\n", header: list[str] | None = None
) -> bytes:
    lines = [",".join(header or HEADER), *(",".join(r) for r in rows)]
    return (ending.join(lines) + ending).encode(encoding)


def nhi(data: bytes, a: Agreement = NHI, on: dt.date = ON) -> Verdict:
    return check_file(io.BytesIO(data), a, a.flow("monthly"), on)


def rules(verdict: Verdict) -> list[str]:
    return [r.rule for r in verdict.reasons]


@pytest.mark.parametrize("encoding", ["cp932", "utf-8", "utf-8-sig"])
def test_the_demo_file_is_accepted_in_every_allowed_encoding(encoding: str) -> None:
    verdict = nhi(csv_bytes(TARO, HANAKO, WARD, encoding=encoding))
    assert verdict.accepted, verdict.reasons
    assert verdict.facts == {
        "format": "csv",
        "encoding": encoding,
        "rows": 3,
        "withheld": 0,
        "provided": 3,
    }
    assert "isa-nhi-status-loss/scope" in verdict.applied
    assert "isa-nhi-status-loss/datasets.status-change.columns" in verdict.applied
    assert not verdict.notices


def test_full_width_header_and_values_compare_after_nfkc() -> None:
    header = [
        "氏名（英字）",
        "住居地（地方公共団体コード）",
        "住居地",
        "性別",
        "生年月日",
        "在留資格変更年月日",
    ]
    row = [
        "ＴＥＳＴ　ＴＡＲＯ",
        "１３１０４１",
        "東京都新宿区サンプル町1-1",
        "１",
        "１９９０／４／１",
        "Ｒ８．１０．１",
    ]
    verdict = nhi(csv_bytes(row, header=header, encoding="utf-8"))
    assert verdict.accepted, verdict.reasons


def test_blank_lines_carry_no_data() -> None:
    data = csv_bytes(TARO).replace(b"\r\n", b"\r\n\r\n   \r\n", 1)
    verdict = nhi(data)
    assert verdict.accepted and verdict.facts["rows"] == 1


def test_an_encoding_the_agreement_does_not_allow() -> None:
    data = table("isa-nhi-status-loss.toml")
    data["datasets"]["status-change"]["encodings"] = ["utf-8"]
    utf8_only = parse_agreement(data, "x").with_delegations(NHI.delegations)  # type: ignore[arg-type]
    verdict = nhi(csv_bytes(TARO, encoding="cp932"), utf8_only)
    assert rules(verdict) == ["content.encoding"]
    assert verdict.reasons[0].term == "isa-nhi-status-loss/datasets.status-change.encodings"
    assert verdict.reasons[0].clause is not None
    bom = nhi(csv_bytes(TARO, encoding="utf-8-sig"), utf8_only)
    assert bom.accepted  # a BOM is UTF-8 too


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ([*HEADER, "備考"], ["content.header.extra"]),
        (HEADER[:-1], ["content.header.missing"]),
        ([HEADER[1], HEADER[0], *HEADER[2:]], ["content.header.order"]),
        ([*HEADER[:-1], HEADER[0]], ["content.header.missing"]),
    ],
)
def test_header_must_be_the_agreements_columns(header: list[str], expected: list[str]) -> None:
    verdict = nhi(csv_bytes(header=header))
    assert rules(verdict) == expected
    assert all(
        r.term == "isa-nhi-status-loss/datasets.status-change.columns" and r.row == 1
        for r in verdict.reasons
    )


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        (0, "TEST 太郎", "value.latin-name"),
        (1, "131042", "value.local-government-code"),  # check digit
        (1, "13104", "value.local-government-code"),
        (2, "", "value.empty"),
        (2, "x" * 201, "value.too-long"),
        (3, "M", "value.sex"),
        (4, "令和1年4月30日", "value.date"),  # before 令和 began
        (5, "2026-02-30", "value.date"),
    ],
)
def test_each_value_type_is_checked(column: int, value: str, rule: str) -> None:
    row = list(TARO)
    row[column] = value
    verdict = nhi(csv_bytes(row, encoding="utf-8"))
    assert rules(verdict) == [rule]
    reason = verdict.reasons[0]
    assert (reason.row, reason.column) == (2, HEADER[column])
    assert reason.term == "isa-nhi-status-loss/datasets.status-change.columns"
    if value.strip():
        assert value not in reason.message  # never the value itself


def test_a_file_without_its_header_row_never_names_its_first_row() -> None:
    data = csv_bytes(HANAKO, header=TARO)  # the first data row where the header belongs
    verdict = nhi(data)
    assert rules(verdict) == ["content.header.absent"]
    text = str(verdict.as_dict())
    for value in TARO:
        if len(value) > 1:
            assert value not in text


def test_an_unexpected_header_cell_is_named_by_position_only() -> None:
    header = list(HEADER)
    header[2] = "123456789018"  # a My Number where 住居地 belongs
    verdict = nhi(csv_bytes(header=header, encoding="utf-8"))
    assert rules(verdict) == ["content.my-number", "content.header.extra", "content.header.missing"]
    extra = verdict.reasons[1]
    assert extra.column is None and "header cell 3" in extra.message
    assert "123456789018" not in str(verdict.as_dict())


@pytest.mark.parametrize("where", [2, "header"])
def test_my_number_anywhere_is_refused(where: int | str) -> None:
    row = list(TARO)
    header = list(HEADER)
    if where == "header":
        header[2] = "住居地 1234-5678-9018"
    else:
        row[2] = "東京都新宿区 123456789018"
    verdict = nhi(csv_bytes(row, header=header, encoding="utf-8"))
    assert "content.my-number" in rules(verdict)
    reason = next(r for r in verdict.reasons if r.rule == "content.my-number")
    assert reason.term == "isa-nhi-status-loss/datasets.status-change.my_number"
    assert "123456789018" not in reason.message


def test_rows_of_the_wrong_width() -> None:
    verdict = nhi(csv_bytes(TARO[:-1], [*HANAKO, "x"], encoding="utf-8"))
    assert rules(verdict) == ["content.row.width", "content.row.width"]
    assert [r.row for r in verdict.reasons] == [2, 3]


def test_reasons_stop_at_the_cap() -> None:
    bad = list(TARO)
    bad[3] = "?"
    verdict = nhi(csv_bytes(*[bad] * 40, encoding="utf-8"))
    assert len(verdict.reasons) == MAX_REASONS + 1 and rules(verdict)[-1] == "content.more"


# --- the delegation scope (委任状), seed 000 記1(3) ---------------------------------------------


def test_split_withholds_uncovered_rows_and_keeps_the_rest_byte_for_byte() -> None:
    data = csv_bytes(TARO, OSAKA, HANAKO, KOBE, WARD)
    verdict = nhi(data)
    assert verdict.accepted
    assert verdict.facts["withheld"] == 2 and verdict.facts["provided"] == 3
    kept = b"".join(data[start:end] for start, end in verdict.facts["keep"])
    assert kept == csv_bytes(TARO, HANAKO, WARD)
    assert verdict.facts["keep"] == sorted(verdict.facts["keep"])
    assert len(verdict.facts["keep"]) == 3  # header+TARO, HANAKO, WARD: merged where adjacent
    (notice,) = verdict.notices
    assert notice.rule == "scope.withheld" and notice.term == "isa-nhi-status-loss/scope"
    assert notice.clause and "委任状" in notice.clause
    assert "2 of 5" in notice.message
    for value in OSAKA + KOBE:  # the withheld rows themselves are nowhere in the verdict
        if len(value) >= 4:
            assert value not in str(verdict.as_dict())


def test_split_keeps_a_bom_and_lf_endings_exactly() -> None:
    data = csv_bytes(OSAKA, TARO, encoding="utf-8-sig", ending="\n")
    verdict = nhi(data)
    kept = b"".join(data[s:e] for s, e in verdict.facts["keep"])
    assert kept == csv_bytes(TARO, encoding="utf-8-sig", ending="\n")


def test_split_of_only_uncovered_rows_leaves_the_header() -> None:
    verdict = nhi(csv_bytes(OSAKA, KOBE))
    assert verdict.accepted and verdict.facts["provided"] == 0
    assert verdict.facts["keep"] == [[0, len(",".join(HEADER).encode("cp932")) + 2]]


def test_a_municipality_is_covered_only_from_the_day_it_filed() -> None:
    # 札幌市 filed on 2024-04-01 in the sample registry.
    sapporo = ["TEST GORO", "011002", "北海道札幌市テスト", "1", "1980-01-01", "2024-03-01"]
    assert nhi(csv_bytes(sapporo), on=dt.date(2024, 3, 31)).facts["withheld"] == 1
    assert nhi(csv_bytes(sapporo), on=dt.date(2024, 4, 1)).facts["withheld"] == 0


def _variant(**scope: Any) -> Agreement:
    data = table("isa-nhi-status-loss.toml")
    data["scope"].update(scope)
    return parse_agreement(data, "variant").with_delegations(NHI.delegations)  # type: ignore[arg-type]


def test_reject_refuses_the_file_naming_each_uncovered_row() -> None:
    verdict = nhi(csv_bytes(TARO, OSAKA, KOBE), _variant(outside="reject"))
    assert rules(verdict) == ["scope.not-delegated"] * 2
    assert [r.row for r in verdict.reasons] == [3, 4]
    assert all(
        r.term == "isa-nhi-status-loss/scope" and r.column == HEADER[1] for r in verdict.reasons
    )
    assert "keep" not in verdict.facts


def test_coverage_judged_on_each_rows_date() -> None:
    by_row = _variant(as_of="row", date_column="在留資格変更年月日")
    early = list(TARO)
    early[5] = "2023-04-02"  # 新宿区 filed on 2023-04-03
    verdict = nhi(csv_bytes(early, TARO), by_row)
    assert verdict.facts["withheld"] == 1 and verdict.facts["provided"] == 1


def test_without_the_registry_nothing_can_be_shown_covered() -> None:
    bare = agreement("isa-nhi-status-loss", delegations=False)
    verdict = nhi(csv_bytes(TARO), bare)
    assert rules(verdict) == ["scope.no-registry"]
    assert verdict.reasons[0].term == "isa-nhi-status-loss/scope"


# --- the catch-up bound, seed 000 その他 -------------------------------------------------------


def test_events_before_the_catch_up_date_are_refused() -> None:
    old = list(TARO)
    old[5] = "令和4年3月31日"  # the day before 2022-04-01
    verdict = nhi(csv_bytes(old))
    assert rules(verdict) == ["schedule.before-catch-up"]
    assert verdict.reasons[0].term == "isa-nhi-status-loss/flows.monthly.schedule"
    assert (verdict.reasons[0].row, verdict.reasons[0].column) == (2, "在留資格変更年月日")


def test_a_catch_up_provision_is_recorded() -> None:
    first = list(TARO)
    first[5] = "令和4年4月1日"
    verdict = nhi(csv_bytes(first, TARO))
    assert verdict.accepted
    (notice,) = verdict.notices
    assert notice.rule == "schedule.catch-up" and "1 rows" in notice.message


# --- seed 001: categories (区分 1–8) ------------------------------------------------------------

SKILLED_HEADER = [c.name for c in SKILLED.datasets["specified-skilled"].columns]
SKILLED_ROW = [
    "1",
    "2026-10-01",
    "TEST TARO",
    "ベトナム",
    "1995-05-05",
    "1",
    "特定技能1号",
    "1年",
    "2027-10-01",
    "東京都新宿区サンプル町1-1",
    "介護",
    "AB12345678CD",
]


def skilled(*rows: list[str]) -> Verdict:
    data = csv_bytes(*rows, header=SKILLED_HEADER, encoding="utf-8")
    return check_file(io.BytesIO(data), SKILLED, SKILLED.flow("monthly"), ON)


def test_seed_001_rows_are_accepted_with_optional_items_empty() -> None:
    departure = list(SKILLED_ROW)
    departure[0], departure[7], departure[8], departure[9], departure[10] = "2", "", "", "", ""
    verdict = skilled(SKILLED_ROW, departure)
    assert verdict.accepted, verdict.reasons
    assert "scope" not in " ".join(verdict.applied)


def test_seed_001_category_must_be_one_of_the_eight() -> None:
    row = list(SKILLED_ROW)
    row[0] = "9"
    verdict = skilled(row)
    assert rules(verdict) == ["value.category"]
    assert verdict.reasons[0].term == (
        "isa-mhlw-specified-skilled/datasets.specified-skilled.categories"
    )
    assert verdict.reasons[0].clause is not None


def test_allowed_values_are_enforced() -> None:
    data = table("isa-mhlw-specified-skilled.toml")
    data["datasets"]["specified-skilled"]["columns"][10]["allowed"] = ["介護", "建設"]
    limited = parse_agreement(data, "x")
    row = list(SKILLED_ROW)
    row[10] = "漁業"
    payload = csv_bytes(row, header=SKILLED_HEADER, encoding="utf-8")
    verdict = check_file(io.BytesIO(payload), limited, limited.flow("monthly"), ON)
    assert rules(verdict) == ["value.not-allowed"]


# --- seed 003: Excel ----------------------------------------------------------------------------

ARREARS_HEADER = [c.name for c in SHINJUKU.datasets["arrears"].columns]
ARREARS_ROW: list[Any] = [
    "TEST TARO",
    "試験 太郎",
    "男",
    dt.datetime(1990, 4, 1),
    "ベトナム",
    "AB12345678CD",
    "留学",
    "1年3月",
    "令和9年3月31日",
    "督促・催告を行い、納付相談を重ねたが納付がない(試験データ)",
]


def xlsx_bytes(*rows: list[Any], header: list[str] | None = None) -> bytes:
    book = openpyxl.Workbook()
    book.active.append(header or ARREARS_HEADER)
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def arrears(data: bytes) -> Verdict:
    return check_file(io.BytesIO(data), SHINJUKU, SHINJUKU.flow("provision"), dt.date(2026, 6, 1))


def test_seed_003_workbook_is_accepted() -> None:
    no_kanji = list(ARREARS_ROW)
    no_kanji[1] = None  # not every foreign resident has a kanji name
    verdict = arrears(xlsx_bytes(ARREARS_ROW, no_kanji))
    assert verdict.accepted, verdict.reasons
    assert verdict.facts == {"format": "xlsx", "rows": 2}


def test_seed_003_workbook_values_are_checked() -> None:
    row = list(ARREARS_ROW)
    row[5] = "ab12345678cd"
    row[7] = "3か月"
    verdict = arrears(xlsx_bytes(row))
    assert rules(verdict) == ["value.residence-card-number", "value.period-of-stay"]
    assert all(
        r.term == "shinjuku-immigration-arrears/datasets.arrears.columns" for r in verdict.reasons
    )


def test_seed_003_wants_an_xlsx_not_a_csv() -> None:
    verdict = arrears(csv_bytes(header=ARREARS_HEADER, encoding="utf-8"))
    assert rules(verdict) == ["content.xlsx.not-xlsx"]
    assert verdict.reasons[0].term == "shinjuku-immigration-arrears/datasets.arrears.format"


def test_an_empty_workbook_or_csv() -> None:
    book = openpyxl.Workbook()
    out = io.BytesIO()
    book.save(out)
    assert rules(arrears(out.getvalue())) == ["content.empty"]
    assert rules(nhi(b"")) == ["content.empty"]


def test_check_csv_keeps_working_for_a_bare_dataset() -> None:
    dataset = NHI.datasets["status-change"]
    verdict = check_csv(io.BytesIO(csv_bytes(TARO, OSAKA)), dataset, "demo/datasets.x")
    assert verdict.accepted and verdict.facts == {"format": "csv", "encoding": "cp932", "rows": 2}
    bad = check_csv(io.BytesIO(csv_bytes(header=HEADER[:-1])), dataset, "demo/datasets.x")
    assert bad.reasons[0].term == "demo/datasets.x.columns"


# --- property tests: any bytes, and values never leak ------------------------------------------


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_any_bytes_give_a_verdict_for_csv_and_xlsx_flows(data: bytes) -> None:
    for verdict in (nhi(data), arrears(data)):
        assert isinstance(verdict, Verdict)
        assert verdict.accepted or verdict.reasons[0].rule


# Each cell carries a marker no message contains, so finding one in a message means an echo.
CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=3, max_size=10).map(
    lambda text: "☃" + text
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(CELL, min_size=1, max_size=8), st.lists(st.sampled_from(HEADER), max_size=6))
def test_reasons_never_repeat_a_cell_of_the_first_row(cells: list[str], names: list[str]) -> None:
    import csv as csv_module

    first = [*cells, *names]
    buffer = io.StringIO()
    csv_module.writer(buffer, lineterminator="\r\n").writerow(first)
    verdict = nhi(buffer.getvalue().encode("utf-8"))
    assert not verdict.accepted
    assert "☃" not in str(verdict.as_dict())


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(CELL, min_size=6, max_size=6), min_size=1, max_size=4))
def test_reasons_never_repeat_a_cell(rows: list[list[str]]) -> None:
    import csv as csv_module

    buffer = io.StringIO()
    writer = csv_module.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    verdict = nhi(buffer.getvalue().encode("utf-8"))
    text = " ".join(r.message + (r.column or "") for r in (*verdict.reasons, *verdict.notices))
    assert "☃" not in text
