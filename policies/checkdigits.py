"""Check digits: local government code (地方公共団体コード) and My Number (個人番号).

Owns the arithmetic that tells a well-formed identifier from a mistyped one, and the scan that
finds My Numbers hidden in free text. Pure: it never logs, stores or echoes the values it judges.
"""

from __future__ import annotations

import re
import unicodedata
from operator import mul

# python-stdnum's `jp.in_` is the maintained, doctested implementation of the 個人番号 check digit
# (weights 6,5,4,3,2,7,6,5,4,3,2; 個人番号の指定等に関する省令 第5条). Using it rather than a
# copy keeps one source of truth for the weights; LIBRARIES.md records the known answers.
from stdnum.jp import in_ as _my_number

__all__ = [
    "contains_my_number",
    "is_valid_local_government_code",
    "is_valid_my_number",
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
    return bool(_my_number.is_valid(digits))


def contains_my_number(text: str) -> bool:
    """True if `text` holds something written like a My Number (個人番号) with a valid check digit.

    Recognised, after NFKC (so full-width digits and the ideographic space count):
    a run of exactly 12 digits not part of a longer digit run, or the written form in 4-4-4 groups
    separated by one space or one hyphen ("1234 5678 9018", "1234-5678-9018") that is not part of
    a longer grouped sequence such as a 16-digit card number in 4-4-4-4 groups.
    """
    # ASCII text is already NFKC-stable; skipping normalize() keeps the common path in C.
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    for match in _MY_NUMBER_CANDIDATE.finditer(text):
        digits = match.group(0).replace(" ", "").replace("-", "")
        if _my_number.is_valid(digits):
            return True
    return False


# --- private helpers -----------------------------------------------------------------------------

_SIX_ASCII_DIGITS = re.compile(r"[0-9]{6}")
_TWELVE_ASCII_DIGITS = re.compile(r"[0-9]{12}")
_LOCAL_GOVERNMENT_WEIGHTS = (6, 5, 4, 3, 2)

# One compiled pattern for both forms, so a cell is scanned once in C. [0-9] rather than \d: other
# scripts' digits are not written My Numbers, and NFKC has already folded the full-width ones.
# It starts with a plain digit class (re then skips non-digits quickly, about twice as fast on
# mixed text as a leading lookbehind) and looks back from there: the first digit must not follow
# another digit. The grouped form repeats its first separator and is refused when a further group
# of digits is attached on either side, the grouped analogue of "not part of a longer digit run".
_MY_NUMBER_CANDIDATE = re.compile(
    r"[0-9](?<![0-9]{2})[0-9]{3}(?:"
    r"[0-9]{8}(?![0-9])"
    r"|(?<![0-9][ -][0-9]{4})(?P<sep>[ -])[0-9]{4}(?P=sep)[0-9]{4}(?![ -]?[0-9])"
    r")"
)


def _local_government_check_digit(first_five: str) -> int:
    # map() keeps the weighted sum in C; callers pass exactly five ASCII digits.
    total: int = sum(map(mul, map(int, first_five), _LOCAL_GOVERNMENT_WEIGHTS))
    return (11 - total % 11) % 10
