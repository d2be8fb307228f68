"""The daemons (nodes) sharing one state database: each writes a heartbeat every few seconds
(`nodes`), and `tachiai nodes` lists them with the age of their last one.

A heartbeat only says a daemon was alive; it grants nothing (work is claimed per transfer).
Writing one never stops the daemon: a failure is logged and the next one tries again.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.errors import TachiaiError

if TYPE_CHECKING:
    from gateway.state.store import Store, Tx

log = logging.getLogger(__name__)

#: How often a daemon writes its heartbeat.
HEARTBEAT_SECONDS = 5.0
#: A node whose last heartbeat is older than this many heartbeats is listed as stale.
STALE_AFTER_BEATS = 3


@dataclass
class Node:
    """This process as a node: its id, release and start time, and when it last beat.

    Mutable only in `last_beat` (monotonic seconds), which spaces the heartbeats out.
    """

    id: str
    version: str  # "" until the first heartbeat reads it
    started_ns: int
    last_beat: float = field(default=float("-inf"), compare=False)


@dataclass(frozen=True)
class NodeStatus:
    """One row of `tachiai nodes`."""

    id: str
    version: str
    started_ns: int
    heartbeat_ns: int
    age_seconds: float
    stale: bool


def this_node(name: str = "") -> Node:
    """This process as a node: `name` ([gateway] node_name) or HOST:PID."""
    return Node(
        id=name or f"{os.uname().nodename}:{os.getpid()}",
        version="",  # read at the first heartbeat: package metadata costs a command start-up
        started_ns=_wall_ns(),
    )


def heartbeat(store: Store, node: Node, *, force: bool = False) -> bool:
    """Write the node's heartbeat if `HEARTBEAT_SECONDS` passed since the last (or `force`);
    whether one was written. Cheap to call on every turn of the daemon's loop; never raises.
    """
    now = time.monotonic()
    if not force and now - node.last_beat < HEARTBEAT_SECONDS:
        return False
    node.last_beat = now
    node.version = node.version or _version()
    row = {
        "id": node.id,
        "version": node.version,
        "started_ns": node.started_ns,
        "heartbeat_ns": _wall_ns(),
    }
    from gateway.state import schema

    try:
        with store.transaction("write this node's heartbeat") as conn:
            conn.execute(
                _upsert(conn).values(**row).on_conflict_do_update(
                    index_elements=[schema.NODES.c.id],
                    set_={k: v for k, v in row.items() if k != "id"},
                )
            )
    except TachiaiError as exc:
        log.warning("cannot write this node's heartbeat (tried again shortly): %s", exc)
        return False
    return True


def list_nodes(store: Store, now_ns: int | None = None) -> list[NodeStatus]:
    """Every node that ever beat, most recent first, with the age of its last heartbeat.

    Raises:
        StorageError: the database cannot be read.
    """
    from sqlalchemy import select

    from gateway.state import schema

    _N = schema.NODES
    now = _wall_ns() if now_ns is None else now_ns
    with store.reading("read the nodes") as conn:
        rows = conn.execute(select(_N).order_by(_N.c.heartbeat_ns.desc(), _N.c.id)).mappings()
        found = [dict(r) for r in rows]
    limit = HEARTBEAT_SECONDS * STALE_AFTER_BEATS
    return [
        NodeStatus(
            id=r["id"],
            version=r["version"],
            started_ns=int(r["started_ns"]),
            heartbeat_ns=int(r["heartbeat_ns"]),
            age_seconds=max(0.0, (now - int(r["heartbeat_ns"])) / 1e9),
            stale=(now - int(r["heartbeat_ns"])) / 1e9 > limit,
        )
        for r in found
    ]


def _upsert(conn: Tx) -> Any:
    from gateway.state import schema

    # INSERT … ON CONFLICT (id) DO UPDATE, in the connection's own dialect (both dialects'
    # inserts have on_conflict_do_update with the same arguments).
    if conn.dialect.name == "postgresql":
        # Imported here: loaded only where PostgreSQL is used, not at every command's start.
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(schema.NODES)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(schema.NODES)


def _wall_ns() -> int:
    # The real wall clock, not gateway.state.clock: a daemon whose clock a test shifted must
    # not look stale (or fresh) to a command that reads the plain time.
    return time.time_ns()


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("tachiai")
    except metadata.PackageNotFoundError:
        return "unknown"
