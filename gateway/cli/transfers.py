"""`tachiai transfers list|show|statement|link|retry`: the outbound transfers.

Parsing and printing only. The statement a witness signs lives in `gateway.outbound.approvals`,
links and threads in `gateway.outbound.replies`, putting a failed transfer back in line in
`gateway.outbound.retry`; each change is a ledger event recorded there. JSON keys are stable.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from gateway.cli import table
from gateway.cli.common import Subparsers, group, print_json, runtime_of
from gateway.outbound import approvals, duplicates, replies
from gateway.outbound.lifecycle import State
from gateway.outbound.retry import retry
from gateway.runtime import Runtime
from gateway.state import clock
from gateway.state.store import Transfer


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    _transfers, tsub = group(sub, "transfers", common, help="outbound transfers")
    p = tsub.add_parser("list", parents=[common], help="transfers, oldest first")
    p.add_argument("--state", choices=[s.value for s in State])
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_list)
    p = tsub.add_parser("show", parents=[common], help="one transfer")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_show)
    p = tsub.add_parser("statement", parents=[common], help="the exact bytes a witness signs")
    p.add_argument("id")
    p.set_defaults(handler=_statement)

    p = tsub.add_parser(
        "retry", parents=[common], help="put a failed transfer back in line for delivery"
    )
    p.add_argument("id")
    p.set_defaults(handler=_retry)

    p = tsub.add_parser(
        "link", parents=[common], help="name what a transfer answers or corrects, before approval"
    )
    p.add_argument("id")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--replies-to",
        metavar="HOLDING_OR_TRANSFER",
        help="the holding (or our transfer) this one answers (疑義照会・回答)",
    )
    how.add_argument(
        "--corrects", metavar="TRANSFER", help="our delivered transfer this one corrects (訂正)"
    )
    p.set_defaults(handler=_link)


# -- handlers -----------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    rows = [_json(rt, t) for t in rt.store.list_transfers(State(args.state) if args.state
                                                          else None)]
    if args.json:
        print_json(rows)
        return 0
    print(table.render(["id", "state", "agreement/flow", "file", "size", "sender", "approvals",
                        "updated", "reason"], [table.transfer_row(r) for r in rows])
          if rows else "no transfers")
    return 0


def _show(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    transfer = rt.store.get(args.id)
    data = _json(rt, transfer)
    if args.json:
        print_json(data)
        return 0
    for key, value in data.items():
        if key == "reasons":
            continue
        print(f"{key:>15}: {value if value is not None else '-'}")
    for reason in data["reasons"]:
        place = ", ".join(f"{k} {reason[k]}" for k in ("row", "column") if k in reason)
        print(f"         reason: {reason['rule']}{' at ' + place if place else ''}: "
              f"{reason['message']}")
    unlinked = (replies.unlinked_reply(rt, transfer)
                if transfer.status is State.AWAITING_APPROVAL else None)
    if unlinked is not None:  # a witness's approval is refused until it is linked
        print(f"\nnext: {replies.link_first(unlinked, transfer.id).message}")
    elif data["state"] == State.AWAITING_APPROVAL.value:
        if (earlier := duplicates.earlier_delivery(rt, transfer)) is not None:
            print(f"\nnote: the same bytes were delivered as {earlier.id}; approve with "
                  "--duplicate-ok only if sending them again is intended")
        print(f"\nnext: a witness runs `tachiai approve {data['id']} --key KEY`, or signs "
              f"`tachiai transfers statement {data['id']}` with ssh-keygen -Y sign -n "
              f"{approvals.APPROVAL_NAMESPACE}")
    return 0


def _statement(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    sys.stdout.buffer.write(approvals.statement(rt, rt.store.get(args.id)))
    sys.stdout.buffer.flush()
    return 0


def _retry(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    after = retry(rt, args.id, getpass.getuser())
    print(f"transfer {after.id} is {after.state} again; the daemon delivers it next")
    return 0


def _link(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    relation, ref = (
        ("replies_to", args.replies_to) if args.replies_to else ("corrects", args.corrects)
    )
    link = replies.link_transfer(rt, args.id, relation, ref, getpass.getuser())
    print(
        f"transfer {link.transfer} {relation.replace('_', ' ')} {ref} (transfer "
        f"{link.remote}); the witnesses' statement now names it"
    )
    return 0


# -- private ------------------------------------------------------------------------------------


def _json(rt: Runtime, t: Transfer) -> dict[str, Any]:
    return {
        "id": t.id, "agreement": t.agreement, "flow": t.flow, "recipient": t.recipient,
        "state": t.state, "file_name": t.file_name, "size": t.size, "sha256": t.sha256,
        "sender": t.sender, "owner": t.owner,
        "approvals": [a.witness for a in rt.store.approvals(t.id)],
        "reasons": t.reason_list(), "rows": t.rows, "encoding": t.encoding,
        "sealed_sha256": t.sealed_sha256, "delivered_path": t.delivered_path,
        "password_path": t.password_path, "created": clock.iso(t.created_ns),
        "updated": clock.iso(t.updated_ns),
    }
