"""Column value types of a dataset (データ項目): does one cell hold what its column promises?

Owns `check_value` and the fixed type names agreements (確認書) refer to. It only judges: values
are compared after NFKC and trimming, but never rewritten. A Problem's message says what was
expected and how to fix it, and never contains the value itself (it may end up in the ledger).
Closed lists (国籍・地域, 在留資格) come from `policies.codelists`; the clock is a value passed in.
Over 400 lines for one reason: the type table, its checkers and their whole-column forms must be
read together to see that they agree (tests/policies/test_content_equivalence.py).
"""

from __future__ import annotations

import datetime as dt
import operator
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from policies import local_governments
from policies.checkdigits import is_valid_local_government_code
from policies.codelists import (
    PERIOD_MAX,
    is_nationality,
    period_months_days,
    status_of_residence,
)
from policies.dates import parse_date
from policies.wording import R_

__all__ = [
    "MAX_AGE_YEARS",
    "MY_NUMBER_FREE_TYPES",
    "PERIOD_OF_STAY",
    "TYPE_NAMES",
    "Problem",
    "all_valid",
    "check_value",
]

# The column types agreements may name; the names are part of the agreement format, never renamed.
TYPE_NAMES: frozenset[str] = frozenset(
    {
        "latin-name",
        "kanji-name",
        "local-government-code",
        "residence-card-number",
        "nationality",
        "sex",
        "date",
        "birth-date",
        "status-of-residence",
        "period-of-stay",
        "text",
    }
)

# The types whose valid values hold fewer than 12 digits, even after NFKC and with the whitespace
# trimmed before judging: no cell that fits them can hold a My Number (個人番号).
MY_NUMBER_FREE_TYPES: frozenset[str] = TYPE_NAMES - {"status-of-residence", "text"}

# A birth date (生年月日) further back than this many years from the day of the check is a typo
# (the oldest person on record lived 122 years); one after that day is one too.
MAX_AGE_YEARS = 130


@dataclass(frozen=True)
class Problem:
    """Why a cell does not fit its column type.

    `rule` is a stable id such as "value.local-government-code"; `message` tells what is expected
    and how to fix it, and never contains the cell's value.
    """

    rule: str
    message: str


def check_value(
    type_name: str, value: str, *, max_length: int | None = None, today: dt.date | None = None
) -> Problem | None:
    """Judge one non-empty cell against a column type; None when it is valid.

    `max_length` overrides the type's default limit (counted in characters, after trimming the
    surrounding whitespace). `today` is the day of the check (a clock reading the caller takes):
    a `birth-date` after it, or more than MAX_AGE_YEARS before it, is refused; without it only
    the date's form is judged. Empty or blank cells are the caller's business, but get a
    "value.empty" Problem here rather than passing.

    Raises:
        ValueError: `type_name` is not one of TYPE_NAMES (agreements are validated before use,
            so this is a programming error).
    """
    try:
        checker, default_limit = _TYPES[type_name]
    except KeyError:
        raise ValueError(f"unknown column type {type_name!r}") from None
    trimmed = value.strip()
    if not trimmed:
        return Problem("value.empty",
                       R_("the cell is empty or blank; fill it in or leave the row out"))
    if len(trimmed) != len(value) and _CONTROL.search(value):
        # The trimming is for spaces around a value: a TAB or line break there is refused as
        # it is inside (a leading TAB also turns the rest into a formula in a spreadsheet).
        edges = value[: value.index(trimmed[0])] + value[value.rindex(trimmed[-1]) + 1 :]
        if _CONTROL.search(edges):
            return _control_problem()
    limit = max_length if max_length is not None else default_limit
    if limit is not None and len(trimmed) > limit:
        return Problem(
            "value.too-long", R_("longer than {limit} characters allowed for a {type} column",
                                 limit=limit, type=type_name)
        )
    # ASCII is already NFKC-stable; skipping normalize() keeps the common path cheap.
    text = trimmed if trimmed.isascii() else unicodedata.normalize("NFKC", trimmed)
    if type_name == "birth-date":
        return _birth_date(text, today)
    return checker(text)


def all_valid(type_name: str, cells: Sequence[str], *, max_length: int | None = None) -> bool:
    """True only if every cell is non-blank and `check_value` accepts it; False says nothing.

    A whole column of a chunk is judged in a few passes in C (a join, NFKC, one regex) for the
    types whose values rarely repeat (names, addresses, free text), and each distinct value once
    for closed lists, codes, sexes and dates, whose values repeat. On False — and always for
    birth dates, which need the day of the check — judge the cells one by one with `check_value`.

    Raises:
        ValueError: `type_name` is not one of TYPE_NAMES.
    """
    try:
        _, default_limit = _TYPES[type_name]
    except KeyError:
        raise ValueError(f"unknown column type {type_name!r}") from None
    if not cells:
        return True
    whole = _WHOLE.get(type_name)
    if whole is None:
        return False
    limit = max_length if max_length is not None else default_limit
    # A cell's length before trimming bounds its length after.
    if limit is not None and max(map(len, cells)) > limit:
        return False
    return whole(cells)


# --- private helpers -----------------------------------------------------------------------------

_Checker = Callable[[str], Problem | None]


class _Pattern:
    """A regular expression compiled when first used, not at import: the name patterns span
    the CJK planes and took tens of milliseconds to compile, which every command paid at
    start-up whether or not it checked a cell."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._compiled: re.Pattern[str] | None = None

    def compiled(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self.pattern)
        return self._compiled

    def fullmatch(self, text: str) -> re.Match[str] | None:
        return self.compiled().fullmatch(text)

    def search(self, text: str) -> re.Match[str] | None:
        return self.compiled().search(text)


# Letters and the punctuation real names use (O'BRIEN, SMITH-JONES, JR.), as on a residence card.
_LATIN_NAME = _Pattern(r"[A-Za-z ,.\-']*[A-Za-z][A-Za-z ,.\-']*")
# CJK ideographs (URO, Ext A, compatibility, Ext B onward), 々 and 〆, hiragana, katakana (with ー,
# ・ and ヶ), katakana phonetic extensions; Latin letters and name punctuation for mixed names.
# Private-use characters (外字) are refused: the recipient cannot know what they stand for.
_KANJI_NAME_CHARS = (
    r"\u3400-\u4DBF\u4E00-\u9FFF\uF900-\uFAFF\U00020000-\U0003FFFF"
    r"\u3005\u3006\u3041-\u309F\u30A0-\u30FF\u31F0-\u31FF"
    r"A-Za-z"
)
_KANJI_NAME = _Pattern(
    f"[{_KANJI_NAME_CHARS} ,.\\-']*[{_KANJI_NAME_CHARS}][{_KANJI_NAME_CHARS} ,.\\-']*"
)
_RESIDENCE_CARD_NUMBER = _Pattern(r"[A-Z]{2}[0-9]{8}[A-Z]{2}")
_SIX_DIGITS = _Pattern(r"[0-9]{6}")
# 在留期間 as written on a residence card: 5年, 1年6月, 6月, 90日, 無期限. No zero, no leading zero.
PERIOD_OF_STAY = _Pattern(
    r"無期限|[1-9][0-9]?年(?:(?:[1-9]|1[01])月)?|[1-9][0-9]?月|[1-9][0-9]{0,2}日"
)
_ANY_DIGIT = _Pattern(r"\d")
# Cc (C0 and C1 controls, incl. line breaks and DEL), lone surrogates (undecodable bytes kept by
# surrogateescape) and the bidirectional embeddings, overrides and isolates that reorder what a
# reader sees (Trojan Source). A regex keeps the scan in C for large files.
_CONTROL_CLASS = r"\x0a-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069"
_CONTROL = _Pattern(rf"[\x00-\x09{_CONTROL_CLASS}]")
_SEX_CODES = frozenset({"0", "1", "2", "9", "男", "女"})
_PERIOD_LIMIT = period_months_days(PERIOD_MAX)
# Only 短期滞在 is granted in days (90日, 30日, 15日以内の日を単位とする期間).
_PERIOD_DAYS_MAX = 90


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _control_problem() -> Problem:
    return Problem(
        "value.control-character",
        R_("contains a control character (TAB, line break, escape, bidirectional override or "
        "similar); remove it"),
    )


def _latin_name(text: str) -> Problem | None:
    if _LATIN_NAME.fullmatch(text):
        return None
    if _ANY_DIGIT.search(text):
        return Problem("value.latin-name", R_("a Latin-letter name (氏名(英字)) has no digits"))
    return Problem(
        "value.latin-name",
        R_("expected a name in Latin letters (氏名(英字)): A-Z, a-z, spaces and , . - ' only, "
        "without accents or other scripts"),
    )


def _kanji_name(text: str) -> Problem | None:
    if _KANJI_NAME.fullmatch(text):
        return None
    if _ANY_DIGIT.search(text):
        return Problem("value.kanji-name", R_("a name (氏名(漢字)) has no digits"))
    return Problem(
        "value.kanji-name",
        R_("expected a name (氏名(漢字)) in kanji, kana, Latin letters and spaces; 外字 "
        "(private-use characters) and symbols must be replaced by standard characters"),
    )


def _local_government_code(text: str) -> Problem | None:
    if is_valid_local_government_code(text):
        if local_governments.lookup(text) or local_governments.city_of_ward(text):
            return None
        return Problem(
            "value.local-government-code",
            R_("not a local government code (地方公共団体コード) of the 総務省 list (as of "
               "{date}): the check digit fits, but no prefecture, municipality or ward of a "
               "designated city has this code; look for a mistyped or shifted digit, or a code "
               "retired by a merger",
               date=local_governments.LIST_DATE),
        )
    if _SIX_DIGITS.fullmatch(text):
        return Problem(
            "value.local-government-code",
            R_("the check digit (6th digit) of this local government code (地方公共団体コード) "
            "does not match; look for a mistyped digit"),
        )
    return Problem(
        "value.local-government-code",
        R_("expected a 6-digit local government code (地方公共団体コード) including its check "
        "digit; a 5-digit code lacks the check digit"),
    )


def _residence_card_number(text: str) -> Problem | None:
    if _RESIDENCE_CARD_NUMBER.fullmatch(text):
        return None
    return Problem(
        "value.residence-card-number",
        R_("expected a residence card number (在留カード番号): 2 uppercase letters, 8 digits, "
        "2 uppercase letters, without spaces; lowercase letters are not accepted"),
    )


def _nationality(text: str) -> Problem | None:
    if is_nationality(text):
        return None
    if _has_control(text):
        return _control_problem()
    return Problem(
        "value.nationality",
        R_("not a nationality or region (国籍・地域) of the list: write the name as on the "
           "residence card (e.g. ベトナム, 韓国, 台湾), an ISO 3166-1 code in capitals (VN, VNM), "
           "or 無国籍"),
    )


def _sex(text: str) -> Problem | None:
    if text in _SEX_CODES:
        return None
    return Problem(
        "value.sex",
        R_("expected sex (性別) as an ISO/IEC 5218 code (0 not known, 1 male, 2 female, "
        "9 not applicable) or 男 / 女"),
    )


def _date(text: str) -> Problem | None:
    try:
        parse_date(text)
    except ValueError as error:
        # parse_date's messages never repeat the input, so its reason is safe to pass on.
        return Problem("value.date", R_("expected a date (年月日): {error}", error=error))
    return None


def _birth_date(text: str, today: dt.date | None) -> Problem | None:
    try:
        day = parse_date(text)
    except ValueError as error:
        return Problem("value.date", R_("expected a date (年月日): {error}", error=error))
    if today is None:
        return None
    if day > today:
        return Problem("value.birth-date", R_("a birth date (生年月日) in the future; correct it"))
    if day.year < today.year - MAX_AGE_YEARS:
        return Problem(
            "value.birth-date",
            R_("a birth date (生年月日) more than {years} years ago; look for a mistyped "
               "year or era (元号)", years=MAX_AGE_YEARS),
        )
    return None


def _status_of_residence(text: str) -> Problem | None:
    if status_of_residence(text) is not None:
        return None
    if _has_control(text):
        return _control_problem()
    return Problem(
        "value.status-of-residence",
        R_("not a 在留資格 of 入管法 別表第一・第二: write it as on the residence card, e.g. "
        "特定技能1号, 技術・人文知識・国際業務, 永住者, 特定活動"),
    )


def _period_of_stay(text: str) -> Problem | None:
    if PERIOD_OF_STAY.fullmatch(text):
        given = period_months_days(text)
        if given is None:
            return None
        assert _PERIOD_LIMIT is not None
        if given[1] > _PERIOD_DAYS_MAX or given[0] > _PERIOD_LIMIT[0]:
            return Problem(
                "value.period-of-stay",
                R_("longer than any period of stay (在留期間): at most {longest} or {days}日, "
                   "or 無期限 (入管法施行規則 別表第二)", longest=PERIOD_MAX,
                   days=_PERIOD_DAYS_MAX),
            )
        return None
    return Problem(
        "value.period-of-stay",
        R_("expected a period of stay (在留期間) such as 5年, 1年6月, 6月, 90日 or 無期限, "
        "without spaces"),
    )


def _text(text: str) -> Problem | None:
    # TAB is refused like ESC, DEL, BEL and NUL: it is invisible in a cell, and at the start of
    # one it turns the rest into a formula in a spreadsheet (see policies.formulas).
    if _has_control(text):
        return _control_problem()
    return None


# type name → (checker of the NFKC-normalised, trimmed cell, default max length or None).
_TYPES: dict[str, tuple[_Checker, int | None]] = {
    "latin-name": (_latin_name, 100),
    "kanji-name": (_kanji_name, 100),
    "local-government-code": (_local_government_code, None),
    "residence-card-number": (_residence_card_number, None),
    "nationality": (_nationality, 60),
    "sex": (_sex, None),
    "date": (_date, None),
    "birth-date": (_date, None),  # the range is judged in check_value, with the day given
    "status-of-residence": (_status_of_residence, 60),
    "period-of-stay": (_period_of_stay, None),
    "text": (_text, 1000),
}

# --- whole columns (all_valid) -------------------------------------------------------------------
# Why judging the joined column agrees with judging each cell (tests/policies/
# test_content_equivalence.py checks every step on all of Unicode or on generated values):
# - NFKC(a + s + b) == NFKC(a) + s + NFKC(b) for s in "\n" and ",": both are starters that no
#   character composes with, so normalising the join is normalising each cell.
# - Trimming before NFKC only drops leading and trailing whitespace, and NFKC maps whitespace to
#   whitespace, so what the patterns below accept untrimmed they accept trimmed too.
# - NFKC never makes a control character out of other characters, so a column without one has
#   none after NFKC either.


def _cells(cell: str) -> _Pattern:
    """Cells joined by line breaks, each a fullmatch of `cell`."""
    return _Pattern(f"(?:(?:{cell})\n)*(?:{cell})")


# The name patterns say where the mandatory letter is (the first one), unlike _LATIN_NAME and
# _KANJI_NAME, so that a failed match over thousands of cells backtracks in linear time.
_LATIN_NAME_CELLS = _cells(r"[ ,.\-']*[A-Za-z][A-Za-z ,.\-']*")
_KANJI_NAME_CELLS = _cells(f"[ ,.\\-']*[{_KANJI_NAME_CHARS}][{_KANJI_NAME_CHARS} ,.\\-']*")
_RESIDENCE_CARD_NUMBER_CELLS = _cells(_RESIDENCE_CARD_NUMBER.pattern)


def _matching(pattern: _Pattern) -> Callable[[Sequence[str]], bool]:
    def check(cells: Sequence[str]) -> bool:
        joined = "\n".join(cells)
        if joined.count("\n") != len(cells) - 1:
            return False  # a cell holds a line break: the cells cannot be told apart
        if not joined.isascii():
            joined = unicodedata.normalize("NFKC", joined)
        return pattern.fullmatch(joined) is not None

    return check


def _free_text(control: _Pattern, digits: bool) -> Callable[[Sequence[str]], bool]:
    def check(cells: Sequence[str]) -> bool:
        if not all(map(str.strip, cells)):
            return False  # a blank cell
        joined = ",".join(cells)
        if control.search(joined):
            return False
        if digits:
            text = joined if joined.isascii() else unicodedata.normalize("NFKC", joined)
            return _ANY_DIGIT.search(text) is None
        return True

    return check


# YYYY-MM-DD and YYYY/MM/DD with two-digit months and days, the forms most files use: parse_date
# takes them as year, month and day (its _ISO and _SLASHED) and refuses only a day the calendar
# lacks: year 0, a month or day out of range, 29 February of a common year.
# The pattern lets the two separators differ; the table of months and days does not.
_PLAIN_DATE_CELLS = _cells(r"[0-9]{4}[-/][0-9]{2}[-/][0-9]{2}")
_LEAP_DAYS = frozenset({"-02-29", "/02/29"})
_LEAP_DAY_YEARS = re.compile(r"^([0-9]{4})[-/]02[-/]29$", re.MULTILINE)

@cache
def _month_days() -> frozenset[str]:
    """Every month and day of a leap year, after either separator (made when first needed: the
    commands that check no file need not pay for it)."""
    first = dt.date(2000, 1, 1)
    return frozenset(
        (first + dt.timedelta(days=n)).strftime(f"{sep}%m{sep}%d")
        for n in range(366)
        for sep in "-/"
    )

_YEAR = operator.itemgetter(slice(None, 4))
_MONTH_DAY = operator.itemgetter(slice(4, None))


def _dates(cells: Sequence[str]) -> bool:
    """A date column: when every cell is a plain ASCII date, the distinct months and days and
    the distinct years are looked up (in C); else each distinct cell is parsed (parse_date)."""
    joined = "\n".join(cells)
    if not (
        joined.isascii()
        and joined.count("\n") == len(cells) - 1
        and _PLAIN_DATE_CELLS.fullmatch(joined)
    ):
        return _closed(_date)(cells)
    month_days = set(map(_MONTH_DAY, cells))
    if not month_days <= _month_days() or "0000" in set(map(_YEAR, cells)):
        return False  # no such day: judged cell by cell, for the reason
    if month_days & _LEAP_DAYS:
        years = set(map(int, _LEAP_DAY_YEARS.findall(joined)))
        return all(y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) for y in years)
    return True


def _closed(checker: _Checker) -> Callable[[Sequence[str]], bool]:
    """A closed list's whole column: its cells repeat, so each distinct one is looked up once."""

    def check(cells: Sequence[str]) -> bool:
        joined = "\n".join(cells)
        if joined.count("\n") != len(cells) - 1:
            return False  # a cell holds a line break: the cells cannot be told apart
        if _CONTROL.search(joined.replace("\n", "")):
            return False  # a control character, maybe around a value: judged cell by cell
        if not joined.isascii():
            joined = unicodedata.normalize("NFKC", joined)
        for cell in set(joined.split("\n")):
            trimmed = cell.strip()
            if not trimmed or checker(trimmed) is not None:
                return False
        return True

    return check


# type name → a check of many non-empty cells that is True only when check_value accepts each.
_WHOLE: dict[str, Callable[[Sequence[str]], bool]] = {
    "latin-name": _matching(_LATIN_NAME_CELLS),
    "kanji-name": _matching(_KANJI_NAME_CELLS),
    "residence-card-number": _matching(_RESIDENCE_CARD_NUMBER_CELLS),
    # The pattern alone would pass 99年: the longest period is a bound on values, per value.
    "period-of-stay": _closed(_period_of_stay),
    "nationality": _closed(_nationality),
    "status-of-residence": _closed(_status_of_residence),
    "local-government-code": _closed(_local_government_code),
    "sex": _closed(_sex),
    "date": _dates,
    "text": _free_text(_CONTROL, digits=False),
}

# TYPE_NAMES is spelled out at the top for readers; this keeps the two lists from drifting apart.
if frozenset(_TYPES) != TYPE_NAMES or not MY_NUMBER_FREE_TYPES < TYPE_NAMES:
    raise RuntimeError("policies.values: TYPE_NAMES and the type table disagree")
