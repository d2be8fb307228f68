"""Retention, deletion and return (消去・返却等利用後の取扱い) of data a recipient holds.

Owns the deadline of a holding and the refusal of a disposal the agreement does not allow
(deleting what must be returned, an uncertified disposal where a certificate is required).
Pure: the gateway passes the day received, today and what the handler did; never the data.
"""

from __future__ import annotations

import datetime as dt

from policies.agreement import Agreement
from policies.reasons import Reason
from policies.wording import R_

__all__ = ["disposal_deadline", "disposal_refusal", "overdue_holding"]


def disposal_deadline(agreement: Agreement, received_on: dt.date) -> dt.date | None:
    """The last day a holding may be kept, or None when the agreement sets no day (then it is
    kept until the purpose is fulfilled, and certified when disposed of)."""
    retention = agreement.retention
    if retention is None:
        return None
    deadlines: list[dt.date] = []
    if retention.max_days is not None:
        deadlines.append(received_on + dt.timedelta(days=retention.max_days))
    if retention.after == "validity-end" and agreement.effective_until is not None:
        deadlines.append(agreement.effective_until)
    return min(deadlines) if deadlines else None


def overdue_holding(agreement: Agreement, received_on: dt.date, today: dt.date) -> Reason | None:
    """The `overdue` decision: a holding kept past its deadline, citing the retention term."""
    deadline = disposal_deadline(agreement, received_on)
    if deadline is None or today <= deadline:
        return None
    then = agreement.retention.then if agreement.retention else "delete"
    return agreement.reason(
        "retention.overdue",
        R_("data received on {received} had to be disposed of ({then}) by {deadline}; dispose "
           "of it now and certify it", received=received_on.isoformat(), then=then,
           deadline=deadline.isoformat()),
        "retention",
    )


def disposal_refusal(agreement: Agreement, method: str, certified: bool) -> Reason | None:
    """Why a disposal (`method` "delete" or "return") does not satisfy the agreement, or None.

    Without a [retention] term the recipient may dispose either way, certified or not.
    """
    retention = agreement.retention
    if retention is None:
        return None
    if method not in {"delete", "return"}:
        return agreement.reason(
            "retention.method",
            R_("a holding is disposed of by deleting it or returning it"),
            "retention.then",
        )
    if retention.then != "delete-or-return" and retention.then != method:
        return agreement.reason(
            "retention.method",
            R_("the agreement requires the data to be {then}d, not {method}d",
               then=retention.then, method=method),
            "retention.then",
        )
    if retention.certificate and not certified:
        return agreement.reason(
            "retention.certificate",
            R_("the agreement requires a designated handler's signed "
               "certificate of the disposal; sign it with `tachiai holdings`"),
            "retention.certificate",
        )
    return None
