"""Column value types (データ項目): valid and invalid cells per type; messages never leak."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.values import TYPE_NAMES, Problem, check_value

# Synthetic values only: no real person, card or address.
VALID: dict[str, list[str]] = {
    "latin-name": [
        "TARO YAMADA TEST",
        "SAMPLE ALICE",
        "O'SAMPLE-TEST, JR.",
        "sample alice",
        "ＴＡＲＯ　ＹＡＭＡＤＡ",  # full-width letters and ideographic space
        "  SAMPLE ALICE  ",
        "X",
    ],
    "kanji-name": [
        "山田　太郎",
        "佐々木 テスト",
        "さんぷる はなこ",
        "サンプル・アリス",
        "ｻﾝﾌﾟﾙ ｱﾘｽ",  # half-width katakana folds to full-width
        "SAMPLE 花子",
        "𠮷田 試験",  # an Extension B ideograph
        "ヶ谷 ヱ",
    ],
    "local-government-code": [
        "131041", "131016", "011002", "１３１０４１", " 130001 ",
        "141011",  # 横浜市鶴見区: a ward of a designated city, not itself in the list
    ],
    "residence-card-number": ["AB12345678CD", "ＡＢ１２３４５６７８ＣＤ", " ZZ00000000ZZ "],
    "nationality": ["ベトナム", "韓国", "台湾", "VN", "VNM", "ＶＮＭ", "無国籍", "朝鮮", " 米国 "],
    "sex": ["0", "1", "2", "9", "男", "女", "１", " 2 "],
    "date": ["2023-03-29", "2023/3/29", "令和5年3月29日", "R5.3.29", "Ｈ３１．４．３０"],
    "birth-date": ["1990-04-01", "平成2年4月1日", "2099-01-01"],  # no day given: form only
    "status-of-residence": [
        "特定活動(告示25号)",
        "永住者",
        "技術・人文知識・国際業務",
        "特定技能1号",
    ],
    "period-of-stay": [
        "5年",
        "3年",
        "1年",
        "1年6月",
        "4年3月",
        "6月",
        "3月",
        "90日",
        "15日",
        "30日",
        "無期限",
        "１年６月",
    ],
    "text": ["東京都新宿区サンプル町1-2-3", "a b", "SAMPLE TEXT 123", "x" * 1000],
}

INVALID: dict[str, list[tuple[str, str]]] = {
    "latin-name": [
        ("TARO1", "value.latin-name"),
        ("ＴＡＲＯ１", "value.latin-name"),
        ("山田 TARO", "value.latin-name"),
        ("Élodie SAMPLE", "value.latin-name"),
        ("...", "value.latin-name"),
        ("TARO\tYAMADA", "value.latin-name"),
        ("TARO;DROP", "value.latin-name"),
        ("A" * 101, "value.too-long"),
    ],
    "kanji-name": [
        ("太郎2", "value.kanji-name"),
        ("太郎２", "value.kanji-name"),
        ("\ue000田", "value.kanji-name"),  # 外字 in the private-use area
        ("山田★", "value.kanji-name"),
        ("山田\n太郎", "value.kanji-name"),
        (", .", "value.kanji-name"),  # punctuation without a letter
        ("山" * 101, "value.too-long"),
    ],
    "local-government-code": [
        ("131042", "value.local-government-code"),
        ("13104", "value.local-government-code"),
        ("1310410", "value.local-government-code"),
        ("13104A", "value.local-government-code"),
        ("131 041", "value.local-government-code"),
        ("999997", "value.local-government-code"),  # check digit right, no prefecture 99
        ("000001", "value.local-government-code"),
        ("480002", "value.local-government-code"),
        # check digit right, prefecture right, but no such body in the 総務省 list
        ("131997", "value.local-government-code"),
        ("133001", "value.local-government-code"),
        ("141194", "value.local-government-code"),  # past 横浜市's block of wards
    ],
    "residence-card-number": [
        ("ab12345678cd", "value.residence-card-number"),
        ("Ab12345678CD", "value.residence-card-number"),
        ("AB1234567CD", "value.residence-card-number"),
        ("AB123456789CD", "value.residence-card-number"),
        ("AB 12345678 CD", "value.residence-card-number"),
        ("A12345678CDE", "value.residence-card-number"),
    ],
    "nationality": [
        ("SAMPLE1", "value.nationality"),
        ("SAMPLELAND", "value.nationality"),
        ("アトランティス", "value.nationality"),
        ("XX", "value.nationality"),
        ("vnm", "value.nationality"),  # codes in capitals only
        ("サンプル国２", "value.nationality"),
        ("SAMPLE\nLAND", "value.control-character"),
        ("N" * 61, "value.too-long"),
    ],
    "sex": [
        ("3", "value.sex"),
        ("M", "value.sex"),
        ("男性", "value.sex"),
        ("01", "value.sex"),
    ],
    "date": [
        ("2023-02-30", "value.date"),
        ("令和1年4月30日", "value.date"),
        ("平成31年5月1日", "value.date"),
        ("TARO", "value.date"),
    ],
    "birth-date": [("2023-02-30", "value.date"), ("TARO", "value.date")],
    "status-of-residence": [
        ("特定活動\x00", "value.control-character"),
        ("特定活動\u202e", "value.control-character"),
        ("資" * 61, "value.too-long"),
        ("観光ビザ", "value.status-of-residence"),
        ("特定技能3号", "value.status-of-residence"),
        ("技術", "value.status-of-residence"),  # 技術 alone: merged into 技術・人文知識・国際業務
    ],
    "period-of-stay": [
        ("0年", "value.period-of-stay"),
        ("05年", "value.period-of-stay"),
        ("1年0月", "value.period-of-stay"),
        ("1年12月", "value.period-of-stay"),
        ("1年 6月", "value.period-of-stay"),
        ("5", "value.period-of-stay"),
        ("5years", "value.period-of-stay"),
        ("永久", "value.period-of-stay"),
        ("6か月", "value.period-of-stay"),
        ("99年", "value.period-of-stay"),
        ("5年1月", "value.period-of-stay"),
        ("61月", "value.period-of-stay"),
        ("91日", "value.period-of-stay"),
    ],
    "text": [
        ("line one\nline two", "value.control-character"),
        ("a\tb", "value.control-character"),  # TAB: refused like ESC, DEL, BEL and NUL
        ("a\rb", "value.control-character"),
        ("bell\x07", "value.control-character"),
        ("del\x7f", "value.control-character"),
        ("c1\x85x", "value.control-character"),
        ("rtl\u202eoverride", "value.control-character"),
        ("undecodable\udc80byte", "value.control-character"),
        ("x" * 1001, "value.too-long"),
    ],
}

CASES_VALID = [(t, v) for t, values in VALID.items() for v in values]
CASES_INVALID = [(t, v, rule) for t, cases in INVALID.items() for v, rule in cases]


def test_every_type_has_cases() -> None:
    assert set(VALID) == set(TYPE_NAMES) == set(INVALID)


@pytest.mark.parametrize(("type_name", "value"), CASES_VALID)
def test_valid_values(type_name: str, value: str) -> None:
    assert check_value(type_name, value) is None


@pytest.mark.parametrize(("type_name", "value", "rule"), CASES_INVALID)
def test_invalid_values(type_name: str, value: str, rule: str) -> None:
    problem = check_value(type_name, value)
    assert problem is not None
    assert problem.rule == rule
    assert problem.message
    if len(value.strip()) >= 3:  # a digit or two may well appear in an example of the format
        assert value.strip() not in problem.message


@pytest.mark.parametrize("type_name", sorted(TYPE_NAMES))
@pytest.mark.parametrize("value", ["", " ", "\u3000", "\t\n"])
def test_empty_or_blank_cells_are_a_problem(type_name: str, value: str) -> None:
    problem = check_value(type_name, value)
    assert problem is not None
    assert problem.rule == "value.empty"


def test_unknown_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown column type"):
        check_value("shoe-size", "42")


def test_max_length_overrides_the_default() -> None:
    assert check_value("text", "x" * 20, max_length=20) is None
    problem = check_value("text", "x" * 21, max_length=20)
    assert problem is not None
    assert problem.rule == "value.too-long"
    assert "20" in problem.message
    assert check_value("latin-name", "A" * 150, max_length=200) is None


def test_surrounding_whitespace_does_not_count_towards_length() -> None:
    assert check_value("text", " " + "x" * 1000 + " ") is None


def test_problem_is_frozen() -> None:
    problem = Problem("value.sex", "expected a code")
    with pytest.raises(AttributeError):
        problem.rule = "other"  # type: ignore[misc]


# --- messages never contain the value ------------------------------------------------------------

# One invalid probe per branch gives every message a type can produce with its default limit.
_GENERIC_MESSAGES = {
    problem.message
    for problem in (
        check_value(t, v)
        for t, v, _ in [*CASES_INVALID, ("date", "", ""), ("date", "R0.1.1", "")]
        + [("date", p, "") for p in ("M5.1.1", "T1.7.29", "M45.7.30", "T15.12.25", "S1.12.24")]
        + [("date", p, "") for p in ("S64.1.8", "H1.1.7", "H31.5.1")]
        + [(t, "", "") for t in TYPE_NAMES]
    )
    if problem is not None
}


@given(st.sampled_from(sorted(TYPE_NAMES)), st.text())
def test_random_values_never_raise_and_never_leak(type_name: str, value: str) -> None:
    problem = check_value(type_name, value)
    if problem is None:
        return
    assert problem.rule.startswith("value.")
    assert problem.message in _GENERIC_MESSAGES
    trimmed = value.strip()
    if len(trimmed) >= 3 and not any(trimmed in generic for generic in _GENERIC_MESSAGES):
        assert trimmed not in problem.message


@given(
    st.sampled_from(sorted(TYPE_NAMES)),
    st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("0１Ａa年月日 -/.")),
)
def test_random_values_with_full_width_mix_never_raise(type_name: str, value: str) -> None:
    problem = check_value(type_name, value)
    assert problem is None or problem.message in _GENERIC_MESSAGES
