"""`tachiai nodes`: the daemons sharing this state database, their last heartbeat and its age.

A node whose heartbeat is older than three heartbeat intervals is marked stale: it stopped or
lost the database (its claims' leases run out and other nodes take its work over). Reads only.
"""

from __future__ import annotations

import argparse

from gateway.cli import table
from gateway.cli.closing import opened
from gateway.cli.common import Subparsers, print_json, settings_of
from gateway.i18n import _
from gateway.runtime import open_store
from gateway.state import clock
from gateway.state.nodes import HEARTBEAT_SECONDS, STALE_AFTER_BEATS, NodeStatus, list_nodes


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "nodes",
        parents=[common],
        help=_("list the daemons (nodes) using this state database and their last heartbeat"),
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_nodes)


def _nodes(args: argparse.Namespace) -> int:
    """Raises: StorageError when the state database cannot be read."""
    found = list_nodes(opened(open_store(settings_of(args))))
    if args.json:
        print_json([_json(n) for n in found])
        return 0
    if not found:
        print(_("no node has written a heartbeat yet (start one with `tachiai run`)"))
        return 0
    print(table.render(
        [_("NODE"), _("VERSION"), _("LAST HEARTBEAT"), _("AGE"), _("STATUS")],
        [[n.id, n.version, clock.iso(n.heartbeat_ns), f"{n.age_seconds:.0f}s",
          _("stale") if n.stale else _("alive")] for n in found]))
    print(
        _("(a heartbeat every {every} s; stale after {stale} s without one)").format(
            every=f"{HEARTBEAT_SECONDS:.0f}", stale=f"{HEARTBEAT_SECONDS * STALE_AFTER_BEATS:.0f}")
    )
    return 0


def _json(n: NodeStatus) -> dict[str, object]:
    return {
        "node": n.id,
        "version": n.version,
        "started": clock.iso(n.started_ns),
        "heartbeat": clock.iso(n.heartbeat_ns),
        "age_seconds": round(n.age_seconds, 3),
        "stale": n.stale,
    }
