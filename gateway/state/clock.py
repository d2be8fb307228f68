"""The wall clock, read in one place so tests and sweeps can control it.

Agreement dates (期間, 指定期間) are Japanese calendar dates, so "today" is the date in JST
(UTC+9, no daylight saving) whatever the server's own time zone is.
"""

from __future__ import annotations

import datetime as dt
import os
import time

JST = dt.timezone(dt.timedelta(hours=9), "JST")
# For tests of deadlines and terms only: shifts the daemon's clock by whole seconds. Only the
# daemon reads it (`enable_test_offset`), so a person running a command cannot move "today"
# for their own approval; the daemon logs a warning when it is set.
OFFSET_ENV = "TACHIAI_CLOCK_OFFSET_SECONDS"
_offset_ns = 0


def enable_test_offset() -> int:
    """Apply OFFSET_ENV to this process's clock; return the offset in seconds (0 when unset).

    Raises:
        ValueError: when the variable is not a whole number of seconds.
    """
    global _offset_ns
    seconds = int(os.environ.get(OFFSET_ENV, "0") or 0)
    _offset_ns = seconds * 1_000_000_000
    return seconds


def now_ns() -> int:
    return time.time_ns() + _offset_ns


def today() -> dt.date:
    return dt.datetime.fromtimestamp(now_ns() / 1e9, JST).date()


def iso(ns: int) -> str:
    """A time in the ledger (ns since the epoch) as ISO 8601 in JST, to the second."""
    return dt.datetime.fromtimestamp(ns // 1_000_000_000, JST).isoformat()


def parse_since(text: str) -> int:
    """An ISO 8601 date or date and time (JST unless it names its zone) as ns since the epoch;
    a date stands for its first moment.

    Raises:
        ValueError: the text is neither.
    """
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date or time: give e.g. 2026-10-01 or "
                         "2026-10-01T09:30") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=JST)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000
