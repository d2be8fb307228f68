"""The name rules of policies.file_names, on hand-picked and generated names."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st
from stdnum.jp import in_

from policies.checkdigits import contains_my_number
from policies.file_names import check_name

BASE = "12345678901"
MY_NUMBER = BASE + in_.calc_check_digit(BASE)  # synthetic: a valid check digit, nobody's number


def rules(raw: bytes) -> list[str]:
    return [r.rule for r in check_name(raw).reasons]


def test_an_ordinary_japanese_name_passes_unchanged() -> None:
    verdict = check_name("在留資格 変更 2026-10.csv".encode())
    assert verdict.accepted and verdict.name == "在留資格 変更 2026-10.csv"


def test_bytes_that_are_not_utf8_are_refused_without_quoting_them() -> None:
    verdict = check_name(b"bad-\xff\xfe.csv")
    assert not verdict.accepted and rules(b"bad-\xff\xfe.csv") == ["intake.name-not-utf8"]
    assert "bad" not in verdict.reasons[0].message
    assert rules("申請者.csv".encode("cp932")) == ["intake.name-not-utf8"]


def test_controls_and_invisible_formatting_are_refused() -> None:
    for name in ("a\nsha256: 0.csv", "a\tb.csv", "vsc\u202eexe.csv", "a\u2028b.csv", "\x7f.csv"):
        assert "intake.name-control" in rules(name.encode()), name


def test_a_my_number_in_the_name_is_refused_in_every_written_form() -> None:
    for name in (f"申請者-{MY_NUMBER}.csv", f"{MY_NUMBER[:4]} {MY_NUMBER[4:8]} {MY_NUMBER[8:]}.csv",
                 MY_NUMBER.translate(str.maketrans("0123456789", "０１２３４５６７８９")) + ".csv"):
        verdict = check_name(name.encode())
        assert rules(name.encode()) == ["intake.name-my-number"], name
        assert all(MY_NUMBER not in r.message for r in verdict.reasons)


def test_twelve_digits_with_a_wrong_check_digit_pass() -> None:
    wrong = BASE + str((int(in_.calc_check_digit(BASE)) + 1) % 10)
    assert check_name(f"tel-{wrong}.csv".encode()).accepted


def test_windows_forms_keep_their_rule() -> None:
    for name in ("a:b.csv", "CON.csv", "a.csv.", "x" * 201):
        assert rules(name.encode()) == ["intake.file-name"], name


@given(st.binary(max_size=60))
def test_any_bytes_give_a_verdict_never_an_exception(raw: bytes) -> None:
    verdict = check_name(raw)
    assert verdict.accepted == (not verdict.reasons)
    if verdict.accepted:
        assert verdict.name is not None and verdict.name.encode("utf-8") == raw


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_an_accepted_name_is_printable_text_without_a_my_number(name: str) -> None:
    verdict = check_name(name.encode("utf-8", "surrogatepass"))
    if verdict.accepted:
        assert verdict.name is not None
        assert not {unicodedata.category(c) for c in verdict.name} & {"Cc", "Cf", "Zl", "Zp",
                                                                        "Cs", "Cn"}
        assert not contains_my_number(verdict.name)
