"""Queries on fan-outs: a received file split by 地方公共団体コード into child transfers.

Rows in, rows out; what is split and sent is decided in `gateway.forwarding` over
`policies.splitting`. A fan-out, once written, is never changed or removed here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.state.lite import LiteStore

if TYPE_CHECKING:
    from sqlalchemy import Select

    from gateway.state.store import Store, Tx

__all__ = ["Child", "Fanout", "by_holding", "get", "of_transfer", "on_flow", "record"]


@dataclass(frozen=True)
class Child:
    """One child transfer: the member it goes to, its rows and the digest of its bytes."""

    transfer: str
    member: str
    rows: int
    sha256: str
    size: int


@dataclass(frozen=True)
class Fanout:
    """One split of a holding among the members of a party group."""

    id: str
    holding: str
    agreement: str
    flow: str
    group: str
    split_by: str
    parent_sha256: str
    rows: int
    withheld: Mapping[str, int]
    created_by: str | None
    created_ns: int
    children: tuple[Child, ...]


def record(conn: Tx, fanout: Fanout) -> None:
    """Write a fan-out and its children, in the caller's transaction."""
    from gateway.state import schema

    _F, _C = schema.FANOUTS, schema.FANOUT_CHILDREN
    conn.execute(_F.insert(), [{
        "id": fanout.id, "holding": fanout.holding, "agreement": fanout.agreement,
        "flow": fanout.flow, "grp": fanout.group, "split_by": fanout.split_by,
        "parent_sha256": fanout.parent_sha256, "rows": fanout.rows,
        "withheld": json.dumps(dict(fanout.withheld), sort_keys=True),
        "created_by": fanout.created_by, "created_ns": fanout.created_ns,
    }])
    if fanout.children:
        conn.execute(_C.insert(), [{
            "transfer": c.transfer, "fanout": fanout.id, "member": c.member, "rows": c.rows,
            "sha256": c.sha256, "size": c.size,
        } for c in fanout.children])


def get(store: Store, fanout_id: str) -> Fanout | None:
    """Raises: StorageError when the state database cannot be read."""
    if isinstance(store, LiteStore):
        found = store.fanout_rows(fanout_id)
        return None if found is None else _fanout(*found)
    from sqlalchemy import select

    from gateway.state import schema

    _F, _C = schema.FANOUTS, schema.FANOUT_CHILDREN
    with store.reading("read the fan-outs") as conn:
        row = conn.execute(select(_F).where(_F.c.id == fanout_id)).mappings().first()
        if row is None:
            return None
        children = conn.execute(
            select(_C).where(_C.c.fanout == fanout_id).order_by(_C.c.member)
        ).mappings().all()
    return _fanout(dict(row), [dict(c) for c in children])


def of_transfer(store: Store, transfer_id: str) -> Fanout | None:
    """The fan-out a transfer is a child of, or None for a transfer of its own."""
    if isinstance(store, LiteStore):
        parent = store.fanout_of(transfer_id)
        return get(store, parent) if parent is not None else None
    with store.reading("read the fan-outs") as conn:
        found = conn.execute(_parent_of(), {"transfer": transfer_id}).scalar_one_or_none()
    return get(store, found) if found is not None else None


@functools.cache
def _parent_of() -> Select[Any]:
    """`of_transfer`'s query, built once (the transfer as a parameter): the approvals folder
    asks it of every transfer awaiting witnesses. Built at its first use, as the short
    commands never load the database layer."""
    from sqlalchemy import bindparam, select

    from gateway.state import schema

    _C = schema.FANOUT_CHILDREN
    return select(_C.c.fanout).where(_C.c.transfer == bindparam("transfer"))


def by_holding(store: Store, holding_id: str) -> list[Fanout]:
    """Every fan-out of a holding, oldest first."""
    from sqlalchemy import select

    from gateway.state import schema

    _F = schema.FANOUTS
    with store.reading("read the fan-outs") as conn:
        ids = conn.execute(
            select(_F.c.id).where(_F.c.holding == holding_id).order_by(_F.c.created_ns)
        ).scalars().all()
    return [f for f in (get(store, i) for i in ids) if f is not None]


def on_flow(store: Store, agreement: str, flow: str) -> list[Fanout]:
    """Every fan-out made on one flow of an agreement, oldest first (for lateness per member)."""
    from sqlalchemy import select

    from gateway.state import schema

    _F = schema.FANOUTS
    with store.reading("read the fan-outs") as conn:
        ids = conn.execute(
            select(_F.c.id).where(_F.c.agreement == agreement, _F.c.flow == flow)
            .order_by(_F.c.created_ns)
        ).scalars().all()
    return [f for f in (get(store, i) for i in ids) if f is not None]


def _fanout(row: Mapping[str, object], children: Sequence[Mapping[str, object]]) -> Fanout:
    withheld = json.loads(str(row["withheld"]))
    return Fanout(
        id=str(row["id"]), holding=str(row["holding"]), agreement=str(row["agreement"]),
        flow=str(row["flow"]), group=str(row["grp"]), split_by=str(row["split_by"]),
        parent_sha256=str(row["parent_sha256"]), rows=int(str(row["rows"])),
        withheld={str(k): int(v) for k, v in withheld.items()},
        created_by=None if row["created_by"] is None else str(row["created_by"]),
        created_ns=int(str(row["created_ns"])),
        children=tuple(Child(str(c["transfer"]), str(c["member"]), int(str(c["rows"])),
                             str(c["sha256"]), int(str(c["size"]))) for c in children),
    )
