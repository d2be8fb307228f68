"""Dates as written in partners' files: ISO, slashed, YYYYMMDD and Japanese era dates (和暦).

Owns `parse_date` and the era table (元号表). Hand-coded on purpose: jpdatetime accepts dates
outside an era (令和1年4月30日) and japanera returns several candidates for `R5` (暦応 too),
see LIBRARIES.md. Pure: no clock, no logging, and no error message ever repeats the input.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from policies.wording import R_

__all__ = ["ERAS", "Era", "parse_date"]


@dataclass(frozen=True)
class Era:
    """One era (元号) as used for dates: its name, initial, and the days it may be used for.

    `first_day`/`last_day` bound the Gregorian days an era date may name; `offset` turns an era
    year into a Gregorian year (gregorian = era year + offset). `last_day` is None for the current
    era.
    """

    name: str
    initial: str
    first_day: date
    last_day: date | None
    offset: int


# Sources: 元号を改める政令 (昭和64年政令第1号: 平成 from 1989-01-08; 平成31年政令第143号: 令和 from
# 2019-05-01); 大正 from 1912-07-30 and 昭和 from 1926-12-25, the days of accession under
# 登極令 (明治42年皇室令第1号), each the first day of its era (so 大正15年12月25日 does not exist).
# 明治: the era was proclaimed on 1868-10-23 and applied back to 1868-01-25, but until
# 明治5年12月2日 dates were lunisolar (天保暦); 明治5年太政官布告第337号 made the next day
# 明治6年1月1日 = 1873-01-01. Older 明治 dates need a lunisolar conversion we do not do, so
# 明治 dates are accepted from 1873-01-01 only.
ERAS: tuple[Era, ...] = (
    Era("明治", "M", date(1873, 1, 1), date(1912, 7, 29), 1867),
    Era("大正", "T", date(1912, 7, 30), date(1926, 12, 24), 1911),
    Era("昭和", "S", date(1926, 12, 25), date(1989, 1, 7), 1925),
    Era("平成", "H", date(1989, 1, 8), date(2019, 4, 30), 1988),
    Era("令和", "R", date(2019, 5, 1), None, 2018),
)


def parse_date(text: str) -> date:
    """Parse a date in one of the forms partners write, after NFKC and trimming whitespace.

    Accepted: `2023-03-29`; `2023/03/29` and `2023/3/29`; `20230329` (YYYYMMDD, common in
    government CSV exports; years 1873–2199 only); 和暦 `令和5年3月29日` (元年 = year 1);
    short 和暦 `R5.3.29`, `R05.03.29`, `R5/3/29` with initials M, T, S, H, R (uppercase).
    Full-width digits and letters are accepted (NFKC). Era dates must fall inside their era.

    Raises:
        ValueError: the text is not one of these forms, names no real calendar day, or names a
            day outside the era it is written in. The message never contains the text.
    """
    stripped = text.strip()
    # A date is short; refusing long text first bounds the cost of NFKC on hostile cells.
    if len(stripped) > _MAX_DATE_CHARS:
        raise ValueError(_NOT_A_DATE)
    # ASCII is already NFKC-stable (and trimmed): the common forms skip normalize() entirely.
    normalised = stripped if stripped.isascii() else unicodedata.normalize("NFKC", stripped).strip()

    match = _ISO.fullmatch(normalised) or _SLASHED.fullmatch(normalised)
    if match:
        return _calendar_day(int(match["y"]), int(match["m"]), int(match["d"]))

    match = _COMPACT.fullmatch(normalised)
    if match:
        # Eight bare digits are also serial numbers, codes and amounts. parse_date is only ever
        # asked about a date column, and there we still refuse years no record can carry: Japan
        # counts Gregorian days from 明治6年1月1日 (1873), and 2199 bounds any plausible date.
        if not _COMPACT_FIRST_YEAR <= int(match["y"]) <= _COMPACT_LAST_YEAR:
            raise ValueError(_COMPACT_RANGE)
        return _calendar_day(int(match["y"]), int(match["m"]), int(match["d"]))

    match = _WAREKI.fullmatch(normalised)
    if match:
        era = _ERA_BY_NAME[match["era"]]
    else:
        match = _SHORT_WAREKI.fullmatch(normalised)
        if not match:
            raise ValueError(_NOT_A_DATE)
        era = _ERA_BY_INITIAL[match["era"]]
    era_year = 1 if match["y"] == "元" else int(match["y"])
    if era_year < 1:
        raise ValueError(R_("an era year (和暦の年) starts at 1 (元年); 0 is not a year"))
    day = _calendar_day(era.offset + era_year, int(match["m"]), int(match["d"]))
    _check_inside_era(era, day)
    return day


# --- private helpers -----------------------------------------------------------------------------

_MAX_DATE_CHARS = 40
_NOT_A_DATE = R_(
    "not a recognised date: write YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD or a Japanese era date "
    "(和暦) such as 令和5年3月29日 or R5.3.29"
)
_COMPACT_FIRST_YEAR = 1873
_COMPACT_LAST_YEAR = 2199
_COMPACT_RANGE = R_(
    "an 8-digit date (YYYYMMDD) must name a year from {first} to {last}; check that this "
    "column holds dates", first=_COMPACT_FIRST_YEAR, last=_COMPACT_LAST_YEAR
)
_ERA_BY_NAME = {era.name: era for era in ERAS}
_ERA_BY_INITIAL = {era.initial: era for era in ERAS}

# [0-9], not \d: \d would also take digits of other scripts, which int() would quietly accept.
_ISO = re.compile(r"(?P<y>[0-9]{4})-(?P<m>[0-9]{2})-(?P<d>[0-9]{2})")
_SLASHED = re.compile(r"(?P<y>[0-9]{4})/(?P<m>[0-9]{1,2})/(?P<d>[0-9]{1,2})")
_COMPACT = re.compile(r"(?P<y>[0-9]{4})(?P<m>[0-9]{2})(?P<d>[0-9]{2})")
_WAREKI = re.compile(
    "(?P<era>" + "|".join(era.name for era in ERAS) + ")"
    r"(?P<y>元|[0-9]{1,2})年(?P<m>[0-9]{1,2})月(?P<d>[0-9]{1,2})日"
)
_SHORT_WAREKI = re.compile(
    "(?P<era>[" + "".join(era.initial for era in ERAS) + "])"
    r"(?P<y>[0-9]{1,2})(?P<sep>[./])(?P<m>[0-9]{1,2})(?P=sep)(?P<d>[0-9]{1,2})"
)


def _calendar_day(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        # date()'s own message is generic, but build ours so nothing of the input can leak.
        raise ValueError(R_("no such day in the calendar: check the year, month and day")) from None


def _check_inside_era(era: Era, day: date) -> None:
    if day < era.first_day:
        if era.initial == "M":
            raise ValueError(
                R_("明治 dates before 明治6年1月1日 (1873-01-01) are lunisolar and not accepted; "
                   "give the Gregorian date instead")
            )
        raise ValueError(R_("before the {era} era began ({day})", era=era.name,
                              day=era.first_day.isoformat()))
    if era.last_day is not None and day > era.last_day:
        raise ValueError(R_("after the {era} era ended ({day})", era=era.name,
                              day=era.last_day.isoformat()))
