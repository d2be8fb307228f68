"""Claims (leases) on transfers and holdings: who may act on a row now, and until when.

A worker claims a row before any step that writes outside the database; the claim is a
compare-and-set UPDATE that succeeds only while the row is in the state the worker read and is
unclaimed, already its own, or held under a lease that expired (its holder died). Owner ids are
`node:pid:worker`. SQL here is SQLAlchemy Core that runs alike on SQLite and PostgreSQL; it never
decides what a step does, only who may take it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, Table, and_, bindparam, func, or_, select, update

from gateway.state import schema

#: The tables a claim can be on, by the kind of thing their rows are.
KINDS: Mapping[str, Table] = {"transfer": schema.TRANSFERS, "holding": schema.HOLDINGS}


@dataclass(frozen=True)
class Holder:
    """An owner holding claims, for `tachiai status`-like listings."""

    owner: str
    claims: int
    lease_until_ns: int


def owner_id(node: str | None, worker: str) -> str:
    """`node:pid:worker`; node is the configured name or else the host name."""
    return f"{node or socket.gethostname()}:{os.getpid()}:{worker}"


def split_owner(owner: str) -> tuple[str, int | None, str]:
    """(node, pid, worker) of an owner id; pid None when it is not one of ours."""
    node, _, rest = owner.partition(":")
    pid, _, worker = rest.partition(":")
    return node, int(pid) if pid.isdigit() else None, worker


def now_ns() -> int:
    """Lease time is real time (never the test clock offset): it judges whether a holder is
    still alive, not which day it is."""
    return time.time_ns()


def claim(conn: Connection, kind: str, row_id: str, expected_state: str, owner: str,
          lease_seconds: float, *, at_ns: int | None = None) -> bool:
    """Claim the row for `owner` until now + `lease_seconds`, if it is in `expected_state` and
    free (unclaimed, ours, or its lease expired). True when the claim is held."""
    table = KINDS[kind]
    now = now_ns() if at_ns is None else at_ns
    where = (table.c.id == row_id, table.c.state == expected_state, _free(table, owner, now))
    if conn.dialect.name == "postgresql":
        # A row another node is claiming or moving right now is locked: skip it at once
        # rather than wait for its transaction and then find it taken.
        locked = conn.execute(
            select(table.c.id).where(*where).with_for_update(skip_locked=True)
        ).first()
        if locked is None:
            return False
    result = conn.execute(
        update(table)
        .where(*where)
        .values(claimed_by=owner, lease_until_ns=now + int(lease_seconds * 1e9))
    )
    return result.rowcount == 1


#: The first key of intake claims' advisory locks (PostgreSQL's two-key form, a key space apart
#: from the single bigint keys of the ledger, the signer and migrations): "tc" "in".
ENTRY_LOCK_CLASS = 0x7463696E & 0x7FFFFFFF


def entry_claim(conn: Connection, path: str) -> None:
    """Hold the outbox entry at `path` for the rest of `conn`'s transaction (PostgreSQL: a
    transaction-level advisory lock keyed on the path; waits while another node holds it).
    On SQLite a no-op: one daemon per database, whose write transaction already serialises."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(ENTRY_LOCK_CLASS, func.hashtext(path))))


#: The first key of `exclusive` locks (one node at a time on a thing outside the database,
#: such as a partner's pickup account): "tc" "ex".
EXCLUSIVE_LOCK_CLASS = 0x74636578 & 0x7FFFFFFF


def try_exclusive(conn: Connection, name: str) -> bool:
    """Take the session lock on `name` for `conn`'s session without waiting (PostgreSQL); True
    when it is now held. SQLite: always True (one daemon per database)."""
    if conn.dialect.name != "postgresql":
        return True
    key = func.hashtext(name)
    return bool(conn.execute(select(func.pg_try_advisory_lock(EXCLUSIVE_LOCK_CLASS, key)))
                .scalar())


def end_exclusive(conn: Connection, name: str) -> None:
    """Give back the session lock `try_exclusive` took on `name`."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_unlock(EXCLUSIVE_LOCK_CLASS, func.hashtext(name))))


def renew(conn: Connection, kind: str, row_id: str, owner: str, lease_seconds: float,
          *, at_ns: int | None = None) -> bool:
    """Extend `owner`'s claim; False when it is no longer ours (taken over, or finished)."""
    table = KINDS[kind]
    now = now_ns() if at_ns is None else at_ns
    result = conn.execute(
        update(table)
        .where(table.c.id == row_id, table.c.claimed_by == owner)
        .values(lease_until_ns=now + int(lease_seconds * 1e9))
    )
    return result.rowcount == 1


def release(conn: Connection, kind: str, row_id: str, owner: str) -> bool:
    """Give up `owner`'s claim (a no-op when it is not ours); True when one was released."""
    table = KINDS[kind]
    result = conn.execute(
        update(table)
        .where(table.c.id == row_id, table.c.claimed_by == owner)
        .values(claimed_by=None, lease_until_ns=None)
    )
    return result.rowcount == 1


def release_owners(conn: Connection, owners: Sequence[str]) -> int:
    """Release every claim held by `owners` (processes known to be dead); how many."""
    total = 0
    for table in KINDS.values():
        result = conn.execute(
            update(table)
            .where(table.c.claimed_by.in_(list(owners)))
            .values(claimed_by=None, lease_until_ns=None)
        )
        total += result.rowcount
    return total


def holders(conn: Connection) -> list[Holder]:
    """Every owner holding a claim, with how many and its latest lease expiry."""
    found: dict[str, Holder] = {}
    for table in KINDS.values():
        query = (
            select(table.c.claimed_by, func.count(), func.max(table.c.lease_until_ns))
            .where(table.c.claimed_by.is_not(None))
            .group_by(table.c.claimed_by)
        )
        for owner, count, until in conn.execute(query):
            old = found.get(owner)
            found[owner] = Holder(owner, count + (old.claims if old else 0),
                                  max(until or 0, old.lease_until_ns if old else 0))
    return sorted(found.values(), key=lambda h: h.owner)


def candidates(kind: str, states: Sequence[str], owner: str, limit: int,
               *, at_ns: int | None = None) -> Select[Any]:
    """The query for rows in `states` that `owner` could claim now, oldest first.

    Only a listing: `claim` decides, row by row (on PostgreSQL with `FOR UPDATE SKIP
    LOCKED`, so two nodes never both act on a row nor wait for each other's).
    """
    table = KINDS[kind]
    now = now_ns() if at_ns is None else at_ns
    return (
        select(table)
        .where(table.c.state.in_(list(states)), _free(table, owner, now))
        .order_by(table.c.created_ns, table.c.id)
        .limit(limit)
    )


#: The bound parameter `candidate_keys` compares leases with: run it with {NOW: now_ns()}.
NOW = "now"


def candidate_keys(kind: str, states: Sequence[str], owner: str, limit: int,
                   columns: Sequence[str]) -> Select[Any]:
    """`candidates` reading only `columns`, with the time left as the parameter NOW: built once
    and run again and again (the dispatcher's poll), it is neither rebuilt nor re-keyed for
    SQLAlchemy's statement cache at each run."""
    table = KINDS[kind]
    return (
        select(*(table.c[name] for name in columns))
        .where(table.c.state.in_(list(states)), _free(table, owner, bindparam(NOW)))
        .order_by(table.c.created_ns, table.c.id)
        .limit(limit)
    )


def _free(table: Table, owner: str, now: Any) -> Any:
    return or_(
        table.c.claimed_by.is_(None),
        table.c.claimed_by == owner,
        and_(table.c.lease_until_ns.is_not(None), table.c.lease_until_ns < now),
    )
