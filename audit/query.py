"""Finding events: by agreement, party, person, kind, file hash, subject and time.

Indexed columns narrow the search; every event found is then checked against its own bytes, so
a result can never be an event that does not match (the index is a cache, and `audit verify`
proves it complete). A person is the event's actor (the handler who caused it); a party is named
in the event's data (`provider`, `recipient` or `party`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.exc import SQLAlchemyError

from audit.checkpoints import JST
from audit.errors import LedgerIntegrityError, LedgerStorageError
from audit.events import Event, parse

if TYPE_CHECKING:
    from audit.ledger import Ledger

PARTY_FIELDS: Final = ("provider", "recipient", "party")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Query:
    """A filter; every given field must match. `kind` ending in `.*` matches a family."""

    agreement: str | None = None
    party: str | None = None
    person: str | None = None
    kind: str | None = None
    subject: str | None = None
    sha256: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.sha256 is not None and not _HEX64.match(self.sha256):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must not be negative")

    def matches(self, ev: Event) -> bool:
        """Whether an event's own (hashed) fields satisfy the filter."""
        if self.agreement is not None and ev.agreement != self.agreement:
            return False
        if self.person is not None and ev.actor != self.person:
            return False
        if self.subject is not None and ev.subject != self.subject:
            return False
        if self.kind is not None and not _kind_matches(self.kind, ev.kind):
            return False
        if self.since_ns is not None and ev.time_ns < self.since_ns:
            return False
        if self.until_ns is not None and ev.time_ns >= self.until_ns:
            return False
        if self.party is not None and not any(ev.data.get(f) == self.party for f in PARTY_FIELDS):
            return False
        return self.sha256 is None or any(
            k.endswith("sha256") and v == self.sha256 for k, v in ev.data.items()
        )


def search(ledger: Ledger, query: Query) -> Iterator[Event]:
    """The events matching `query`, in seq order.

    Raises:
        LedgerStorageError: when the database cannot be read.
        LedgerIntegrityError: when a stored body is not an event.
    """
    where, params = _where(query, "%s" if ledger.engine.dialect.paramstyle != "qmark" else "?")
    sql = "SELECT seq, body FROM ledger_events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq"
    found = 0
    try:
        with ledger.engine.connect() as conn:
            for seq, body in conn.exec_driver_sql(sql, tuple(params)):
                if query.limit is not None and found >= query.limit:
                    return
                try:
                    ev = parse(body if type(body) is bytes else bytes(body))
                except ValueError as exc:
                    raise LedgerIntegrityError(
                        f"event {seq} is malformed: {exc}", seq=int(seq)
                    ) from exc
                if query.matches(ev):
                    found += 1
                    yield ev
    except SQLAlchemyError as exc:
        raise LedgerStorageError(
            f"cannot read the ledger: {getattr(exc, 'orig', None) or exc}"
        ) from exc


def parse_when(value: str, *, end: bool = False) -> int:
    """ns for `YYYY-MM-DD` (midnight JST; with end=True, the following midnight) or an ISO
    8601 time (JST when it has no offset).

    Raises:
        ValueError: when the value is neither.
    """
    try:
        if re.fullmatch(r"\d{4}-\d\d-\d\d", value):
            day = dt.date.fromisoformat(value) + dt.timedelta(days=1 if end else 0)
            moment = dt.datetime(day.year, day.month, day.day, tzinfo=JST)
        else:
            moment = dt.datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=JST)
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _where(q: Query, mark: str) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("agreement", q.agreement), ("actor", q.person), ("subject", q.subject)):
        if value is not None:
            where.append(f"{column} = {mark}")
            params.append(value)
    if q.kind is not None:
        if q.kind.endswith(".*"):
            # A range instead of LIKE: no wildcard characters to escape in kind names.
            where.append(f"kind >= {mark} AND kind < {mark}")
            params += [q.kind[:-1], q.kind[:-2] + "/"]
        else:
            where.append(f"kind = {mark}")
            params.append(q.kind)
    if q.since_ns is not None:
        where.append(f"time_ns >= {mark}")
        params.append(q.since_ns)
    if q.until_ns is not None:
        where.append(f"time_ns < {mark}")
        params.append(q.until_ns)
    # Values in data are not indexed: narrow by the exact bytes they have in canonical JSON,
    # then check the parsed event (Query.matches).
    for value in (q.party, q.sha256):
        if value is not None:
            where.append(
                f"position({mark} in body) > 0" if mark == "%s" else f"instr(body, {mark}) > 0"
            )
            params.append(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    return where, params


def _kind_matches(pattern: str, kind: str) -> bool:
    return kind.startswith(pattern[:-1]) if pattern.endswith(".*") else kind == pattern
