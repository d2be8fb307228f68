"""在留期間 (period of stay) against the 在留資格 (status of residence) of the same row: no period
longer than 入管法施行規則 別表第二 allows that status, and 無期限 only where it is the status's
period. Pure; messages never repeat the cells.
"""

from __future__ import annotations

import unicodedata

from policies.codelists import period_months_days, status_of_residence
from policies.values import PERIOD_OF_STAY, Problem
from policies.wording import R_

__all__ = ["check_period_for_status"]


def check_period_for_status(status: str, period: str) -> Problem | None:
    """Judge a 在留期間 against the 在留資格 of the same row (施行規則 別表第二); None when it fits.

    Both cells must already be valid for their types (`check_value` accepted each); an empty one
    is not judged here.
    """
    status = unicodedata.normalize("NFKC", status.strip())
    period = unicodedata.normalize("NFKC", period.strip())
    found = status_of_residence(status)
    if found is None or not period or PERIOD_OF_STAY.fullmatch(period) is None:
        return None  # the cell's own type check reports it
    longest = period_months_days(found.longest)
    given = period_months_days(period)
    if longest is None or given is None:
        if longest is None and given is None:
            return None
        if longest is None:
            return Problem(
                "value.period-for-status",
                R_("this 在留資格 is granted for an indefinite period (無期限) only; write 無期限"),
            )
        return Problem(
            "value.period-for-status",
            R_("無期限 is not a period of stay of this 在留資格; its longest is {longest} "
               "(入管法施行規則 別表第二)", longest=found.longest),
        )
    if _days(given) > _days(longest):
        return Problem(
            "value.period-for-status",
            R_("longer than {longest}, the longest period of stay (在留期間) of this 在留資格 "
               "(入管法施行規則 別表第二); check both cells", longest=found.longest),
        )
    return None


# --- private helpers -----------------------------------------------------------------------------


def _days(period: tuple[int, int]) -> int:
    # Months as 31 days: only the order matters, and no period mixes months and days.
    return period[0] * 31 + period[1]
