"""Check digits: local government code (地方公共団体コード) and My Number (個人番号).

Owns the arithmetic that tells a well-formed identifier from a mistyped one, and the scan that
finds My Numbers hidden in free text. Pure: it never logs, stores or echoes the values it judges.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import cache
from operator import mul
from types import ModuleType

__all__ = [
    "SEPARATOR_EXTRAS",
    "contains_my_number",
    "is_valid_local_government_code",
    "is_valid_my_number",
    "my_number_separators",
]


def is_valid_local_government_code(code: str) -> bool:
    """True if `code` is a valid 6-digit local government code (全国地方公共団体コード).

    The check digit (the sixth digit) is (11 − Σ dᵢ·wᵢ mod 11) mod 10 over the first five digits
    with weights (6, 5, 4, 3, 2), as published with the code list by 総務省. No library implements
    it, so it is hand-coded here. Only ASCII digits count: callers normalise (NFKC) first.
    """
    if not _SIX_ASCII_DIGITS.fullmatch(code):
        return False
    return _local_government_check_digit(code[:5]) == int(code[5])


def is_valid_my_number(digits: str) -> bool:
    """True if `digits` is exactly 12 ASCII digits forming a valid My Number (個人番号).

    Separators and full-width digits are not accepted here (use `contains_my_number` to scan text):
    a value that claims to be a bare number must be one.
    """
    if not _TWELVE_ASCII_DIGITS.fullmatch(digits):
        return False
    return bool(_my_number().is_valid(digits))


def contains_my_number(text: str) -> bool:
    """True if `text` holds something written like a My Number (個人番号) with a valid check digit.

    Recognised, after NFKC (so full-width digits and the ideographic space count) and with the
    invisible format characters (Unicode category Cf: zero-width space, soft hyphen, BOM, bidi
    controls) removed: a run of exactly 12 digits not part of a longer digit run, or the written
    form in 4-4-4 groups separated by one separator repeated ("1234 5678 9018", "1234-5678-9018",
    "1234‐5678‐9018") that is not part of a longer grouped sequence such as a 16-digit card
    number in 4-4-4-4 groups. A separator is any dash or hyphen (category Pd), any space
    (category Zs), TAB, or one of the marks typed as a dash (`SEPARATOR_EXTRAS`: minus signs,
    長音符 ー, hyphen bullet, …). Mixed separators ("1234 5678-9018") are not the written form.
    """
    # ASCII text is already NFKC-stable and has no format character; skipping normalize()
    # keeps the common path in C.
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        bmp, wide = _invisible_parts()
        if bmp.search(text) or (
            wide is not None and _BEYOND_BMP.search(text) and wide.search(text)
        ):
            text = _invisible().sub("", text)
    for match in _candidate().finditer(text):
        digits = _NON_DIGITS.sub("", match.group(0))
        if _my_number().is_valid(digits):
            return True
    return False


@cache
def _my_number() -> ModuleType:
    """python-stdnum's `jp.in_`: the maintained, doctested implementation of the 個人番号 check
    digit (weights 6,5,4,3,2,7,6,5,4,3,2; 個人番号の指定等に関する省令 第5条). Using it rather than
    a copy keeps one source of truth for the weights; LIBRARIES.md records the known answers.
    Loaded when first needed: importing stdnum costs every command start-up time."""
    from stdnum.jp import in_

    return in_


# Marks that are not Pd or Zs but are typed, decoded or shown as a dash between digit groups:
# U+2212 MINUS SIGN (what Mac and some Shift_JIS decoders make of 0x817C), U+2796 HEAVY MINUS
# SIGN, U+02D7 MODIFIER LETTER MINUS SIGN, U+2043 HYPHEN BULLET, U+30FC KATAKANA-HIRAGANA
# PROLONGED SOUND MARK (長音符, typed as a dash in addresses) and its half-width form U+FF70
# (NFKC folds it to U+30FC), U+207B/U+208B superscript and subscript minus (NFKC: U+2212),
# U+2574 BOX DRAWINGS LIGHT LEFT and U+2500 BOX DRAWINGS LIGHT HORIZONTAL (罫線, typed as dashes
# in Japanese input methods), U+FE63 SMALL HYPHEN-MINUS and U+FF0D FULLWIDTH HYPHEN-MINUS (Pd
# already; named so that the list reads whole) and TAB.
SEPARATOR_EXTRAS = (
    "\t\u2212\u2796\u02d7\u2043\u30fc\uff70\u207b\u208b\u2574\u2500\ufe63\uff0d"
)


def my_number_separators() -> frozenset[str]:
    """Every character accepted between the 4-4-4 groups of a written My Number."""
    return frozenset(_chars_of({"Pd", "Zs"}, _SEPARATOR_PLANES)) | frozenset(SEPARATOR_EXTRAS)


# --- private helpers -----------------------------------------------------------------------------

_SIX_ASCII_DIGITS = re.compile(r"[0-9]{6}")
_NON_DIGITS = re.compile(r"[^0-9]")
# Unicode places no Pd or Zs character beyond plane 1 (the one there is U+10EAD YEZIDI
# HYPHENATION MARK), and format characters (Cf) beyond plane 1 only in plane 14 (tags); scanning
# these planes rather than all 17 keeps the first check fast. tests/policies/test_my_number.py
# checks the claim against the whole of Unicode.
_SEPARATOR_PLANES = (0, 1)
_FORMAT_PLANES = (0, 1, 14)
_TWELVE_ASCII_DIGITS = re.compile(r"[0-9]{12}")
_BEYOND_BMP = re.compile("[\U00010000-\U0010ffff]")
_LOCAL_GOVERNMENT_WEIGHTS = (6, 5, 4, 3, 2)

def _chars_of(categories: set[str], planes: tuple[int, ...]) -> list[str]:
    """The characters of `planes` whose general category is one of `categories`."""
    out = []
    for plane in planes:
        for code in range(plane << 16, min((plane + 1) << 16, sys.maxunicode + 1)):
            char = chr(code)
            if unicodedata.category(char) in categories:
                out.append(char)
    return out


def _class_of(chars: frozenset[str] | list[str]) -> str:
    """A regex class of exactly `chars`, runs of consecutive code points written as ranges.

    Written char by char, a class with a character beyond the BMP is matched by re as a list
    tried one item at a time (hundreds per character of text); as ranges it is a few dozen.
    """
    runs: list[list[int]] = []
    for code in sorted(map(ord, chars)):
        if runs and runs[-1][1] == code - 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return "[" + "".join(
        re.escape(chr(a)) + ("" if a == b else "-" + re.escape(chr(b))) for a, b in runs
    ) + "]"


@cache
def _invisible() -> re.Pattern[str]:
    # Built on first use, not at import: the CLI's other commands need not pay for it.
    bmp, wide = _invisible_parts()
    return re.compile(bmp.pattern + "|" + wide.pattern if wide is not None else bmp.pattern)


@cache
def _invisible_parts() -> tuple[re.Pattern[str], re.Pattern[str] | None]:
    """The format characters of the BMP, and those beyond it (None if there are none), apart:
    re matches a class of BMP characters with a lookup table, but tries a class holding any
    character beyond the BMP range by range. Most text has no character beyond the BMP, which
    one range (_BEYOND_BMP) tells, so it is searched with the table alone."""
    chars = _chars_of({"Cf"}, _FORMAT_PLANES)
    bmp = [c for c in chars if c <= "\uffff"]
    wide = [c for c in chars if c > "\uffff"]
    return re.compile(_class_of(bmp)), re.compile(_class_of(wide)) if wide else None


# One compiled pattern for both forms, so a cell is scanned once in C. [0-9] rather than \d: other
# scripts' digits are not written My Numbers, and NFKC has already folded the full-width ones.
# It starts with a plain digit class (re then skips non-digits quickly, about twice as fast on
# mixed text as a leading lookbehind) and looks back from there: the first digit must not follow
# another digit. The grouped form repeats its first separator and is refused when a further group
# of digits is attached on either side, the grouped analogue of "not part of a longer digit run".
@cache
def _candidate() -> re.Pattern[str]:
    sep = _class_of(my_number_separators())
    return re.compile(
        r"[0-9](?<![0-9]{2})[0-9]{3}(?:"
        r"[0-9]{8}(?![0-9])"
        rf"|(?<![0-9]{sep}[0-9]{{4}})(?P<sep>{sep})[0-9]{{4}}(?P=sep)[0-9]{{4}}(?!{sep}?[0-9])"
        r")"
    )


def _local_government_check_digit(first_five: str) -> int:
    # map() keeps the weighted sum in C; callers pass exactly five ASCII digits.
    total: int = sum(map(mul, map(int, first_five), _LOCAL_GOVERNMENT_WEIGHTS))
    return (11 - total % 11) % 10
