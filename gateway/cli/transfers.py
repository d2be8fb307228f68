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
from gateway.cli.common import (
    Subparsers,
    group,
    paging_of,
    paging_options,
    print_footer,
    print_json,
    runtime_of,
)
from gateway.cli.messages import label, reason_text
from gateway.cli.messages import place as where
from gateway.exchange.words import APPROVAL_NAMESPACE
from gateway.i18n import N_, _, wording
from gateway.outbound import duplicates, failures, replies
from gateway.outbound.lifecycle import State
from gateway.outbound.names import withheld_hmac
from gateway.outbound.retry import retry
from gateway.runtime import Runtime
from gateway.state import clock
from gateway.state.rows import Transfer


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    _transfers, tsub = group(sub, "transfers", common, help=_("outbound transfers"))
    p = tsub.add_parser("list", parents=[common],
                        help=_("the latest transfers (50 unless told), oldest first"))
    p.add_argument("--state", choices=[s.value for s in State])
    paging_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_list)
    p = tsub.add_parser("show", parents=[common], help=_("one transfer"))
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_show)
    p = tsub.add_parser("statement", parents=[common], help=_("the exact bytes a witness signs"))
    p.add_argument("id")
    p.set_defaults(handler=_statement)

    p = tsub.add_parser(
        "retry", parents=[common], help=_("put a failed transfer back in line for delivery")
    )
    p.add_argument("id")
    p.set_defaults(handler=_retry)

    p = tsub.add_parser(
        "link", parents=[common], help=_("name what a transfer answers or corrects, before "
                                         "approval")
    )
    p.add_argument("id")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--replies-to",
        metavar="HOLDING_OR_TRANSFER",
        help=_("the holding (or our transfer) this one answers (疑義照会・回答)"),
    )
    how.add_argument(
        "--corrects", metavar="TRANSFER", help=_("our delivered transfer this one corrects (訂正)")
    )
    p.set_defaults(handler=_link)


# -- handlers -----------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    since, limit = paging_of(args)
    rt = runtime_of(args, lite=True)
    page, more = rt.store.latest_transfers(State(args.state) if args.state else None,
                                           since_ns=since, limit=limit)
    witnesses = rt.store.witnesses_of([t.id for t in page])
    rows = [_json(rt, t, witnesses[t.id]) for t in page]
    if args.json:
        print_json(rows)
        print_footer(args, len(rows), more, N_("transfer(s)"))
        return 0
    print(table.render([_("id"), _("state"), _("agreement/flow"), _("file"), _("size"), _("sender"),
                        _("approvals"), _("updated"), _("reason")],
                       [table.transfer_row(r) for r in rows])
          if rows else _("no transfers"))
    print_footer(args, len(rows), more, N_("transfer(s)"))
    return 0


def _show(args: argparse.Namespace) -> int:
    rt = runtime_of(args, lite=True)
    transfer = rt.store.get(args.id)
    data = _json(rt, transfer)
    data["approvals_set_aside"] = [
        {"witness": a["witness"], "fingerprint": a["fingerprint"],
         "given": clock.iso(a["created_ns"]), "set_aside": clock.iso(a["set_aside_ns"]),
         "rule": a["rule"], "duplicate_of": a["duplicate_of"]}
        for a in rt.store.approvals_set_aside(transfer.id)]
    if args.json:
        print_json(data)
        return 0
    for key, value in data.items():
        if key in ("reasons", "last_error", "approvals_set_aside"):
            continue
        print(f"{label(key, 15)}: {value if value is not None else '-'}")
    for aside in data["approvals_set_aside"]:
        print(label("approvals_set_aside", 15) + ": " + _(
            "{witness} ({fingerprint}), given {given}, no longer counts since {set_aside} "
            "({rule}; the same bytes delivered as {duplicate_of})").format(
                **{**aside, "duplicate_of": aside["duplicate_of"] or "-"}))
    for reason in data["reasons"]:
        place = where(reason)
        print(_("         reason: {rule}{place}: {message}").format(
            rule=reason['rule'], place=_(" at {place}").format(place=place) if place else "",
            message=reason_text(reason)))
        if reason.get("hint"):
            print(_("           next: {hint}").format(hint=wording(reason['hint'])))
    unlinked = (replies.unlinked_reply(rt, transfer)
                if transfer.status is State.AWAITING_APPROVAL else None)
    if unlinked is not None:  # a witness's approval is refused until it is linked
        print("\n" + _("next: {hint}").format(
            hint=wording(replies.link_first(unlinked, transfer.id).message)))
    elif data["state"] == State.AWAITING_APPROVAL.value:
        if (earlier := duplicates.earlier_delivery(rt, transfer)) is not None:
            print("\n" + _("note: the same bytes were delivered as {earlier}; approve with "
                         "--duplicate-ok only if sending them again is intended").format(
                             earlier=earlier.id))
        print("\n" + _("next: a witness runs `tachiai approve {id} --key KEY`, or signs "
                     "`tachiai transfers statement {id}` with ssh-keygen -Y sign -n "
                     "{namespace}").format(id=data['id'], namespace=APPROVAL_NAMESPACE))
        statement = rt.settings.approvals_folder / transfer.id
        if statement.is_file():  # the daemon publishes it there (gateway.outbound.approval_folder)
            print(_("      or, with OpenSSH alone: ssh-keygen -Y sign -f KEY -n {namespace} "
                    "{statement} (the daemon takes {statement}.sig)").format(
                        namespace=APPROVAL_NAMESPACE, statement=statement))
    return 0


def _statement(args: argparse.Namespace) -> int:
    # Imported here: approving loads the signature code (`cryptography`), which the lists and
    # `show` never need.
    from gateway.outbound import approvals

    rt = runtime_of(args, lite=True)
    sys.stdout.buffer.write(approvals.statement(rt, rt.store.get(args.id)))
    sys.stdout.buffer.flush()
    return 0


def _retry(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    after = retry(rt, args.id, getpass.getuser())
    print(_("transfer {id} is {state} again; the daemon delivers it next").format(
        id=after.id, state=after.state))
    return 0


def _link(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    relation, ref = (
        ("replies_to", args.replies_to) if args.replies_to else ("corrects", args.corrects)
    )
    link = replies.link_transfer(rt, args.id, relation, ref, getpass.getuser())
    print(
        (_("transfer {id} replies to {ref} (transfer {remote}); the witnesses' statement now "
           "names it") if relation == "replies_to" else
         _("transfer {id} corrects {ref} (transfer {remote}); the witnesses' statement now "
           "names it")).format(id=link.transfer, ref=ref, remote=link.remote)
    )
    return 0


# -- private ------------------------------------------------------------------------------------


def _json(rt: Runtime, t: Transfer, witnesses: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": t.id, "agreement": t.agreement, "flow": t.flow, "recipient": t.recipient,
        "state": t.state, "file_name": t.file_name, "size": t.size, "sha256": t.sha256,
        "name_hmac": withheld_hmac(t.source_path),  # a refused name is shown by its hash only
        "sender": t.sender, "owner": t.owner,
        "approvals": (witnesses if witnesses is not None
                      else [a.witness for a in rt.store.approvals(t.id)]),
        "reasons": _reasons(t), "rows": t.rows, "encoding": t.encoding,
        "sealed_sha256": t.sealed_sha256, "delivered_path": t.delivered_path,
        "password_path": t.password_path, "created": clock.iso(t.created_ns),
        "updated": clock.iso(t.updated_ns), "last_error": t.last_error_dict(),
    }


def _reasons(t: Transfer) -> list[dict[str, Any]]:
    """The transfer's reasons; while it waits for (or failed) delivery, the last error's too."""
    reasons = t.reason_list()
    error = t.last_error_dict()
    # After `transfers retry` (sealed again) a final error is history, not what it waits for.
    if error is not None and (t.status is State.FAILED
                              or (t.status is State.SEALED and not error.get("final"))):
        reasons.append(failures.as_reason(error))
    return reasons
