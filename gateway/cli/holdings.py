"""`tachiai holdings …`: the recipient's duties, done and proven.

Argument parsing and printing only. The actions live where they are owned: terms before data
in `gateway.inbound.terms`, opening in `gateway.inbound.opening`, certificates in
`gateway.inbound.certificates`, threads in `gateway.outbound.replies`, retries in
`gateway.inbound.retry`; each step and refusal is a ledger event recorded there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from pathlib import Path
from typing import Any

from gateway import forwarding
from gateway.cli import table
from gateway.cli.common import (
    Subparsers,
    group,
    paging_of,
    paging_options,
    print_footer,
    print_json,
    runtime_of,
    signature_from,
)
from gateway.cli.messages import label, reason_text
from gateway.cli.progress import progress_line
from gateway.i18n import N_, _, wording
from gateway.identity import sshsig
from gateway.identity.sshkeys import load_private_key
from gateway.inbound import holdings, partitions
from gateway.inbound.certificates import (
    CERTIFICATE_NAMESPACE,
    KINDS,
    certificate_statement,
    certificates_of,
    certify,
)
from gateway.inbound.holdings import Holding, HoldingState
from gateway.inbound.opening import OPEN_NAMESPACE, open_holding, open_request
from gateway.inbound.retry import retry
from gateway.inbound.signers import agreement_of
from gateway.inbound.terms import TERMS_NAMESPACE, holder, sign_terms, terms_statement
from gateway.outbound.replies import thread
from gateway.runtime import Runtime
from gateway.state import clock


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    _holdings, hsub = group(sub, "holdings", common, help=_("received data (保有データ)"))
    p = hsub.add_parser("list", parents=[common],
                        help=_("the latest holdings (50 unless told), oldest first"))
    p.add_argument("--overdue", action="store_true", help=_("only those past their deadline "
                                                            "(every one of them: they are few, "
                                                            "and none may be missed)"))
    p.add_argument("--state", choices=[s.value for s in HoldingState])
    p.add_argument("--member", metavar="PARTY", help="only the holdings of this party: on a "
                   "gateway of partitions (区画), one member's")
    paging_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_list)
    p = hsub.add_parser("show", parents=[common], help=_("one holding, its thread and "
                                                         "certificates"))
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_show)
    p = hsub.add_parser(
        "terms", parents=[common], help=_("sign the recipient's obligations before opening data")
    )
    p.add_argument("id", help=_("a holding under the agreement whose terms you sign"))
    _signing(p, TERMS_NAMESPACE)
    p.set_defaults(handler=_terms)
    p = hsub.add_parser("open", parents=[common], help=_("release a holding into your own folder"))
    p.add_argument("id")
    p.add_argument("--key", type=Path, required=True, help=_("your SSH private key"))
    p.set_defaults(handler=_open)
    p = hsub.add_parser(
        "certify", parents=[common], help=_("certify deletion, return or an applied correction")
    )
    p.add_argument("id")
    kind = p.add_mutually_exclusive_group(required=True)
    for name in KINDS:
        kind.add_argument(f"--{name}", dest="kind", action="store_const", const=name)
    p.add_argument("--method", required=True, help=_("how it was done, in one line"))
    _signing(p, CERTIFICATE_NAMESPACE)
    p.set_defaults(handler=_certify)
    p = hsub.add_parser(
        "forward", parents=[common], help=_("split a holding by local government code and send "
                                            "each member of a party group its own rows (one "
                                            "witnessed decision for all)")
    )
    p.add_argument("id", help=_("the holding to forward"))
    p.add_argument("--flow", required=True, help=_("the flow to a party group, e.g. "
                                                   "to-federations"))
    p.add_argument("--split-by", required=True, metavar="COLUMN",
                   help=_("the column holding the 地方公共団体コード"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_forward)
    p = hsub.add_parser(
        "retry", parents=[common], help=_("check a refused delivery again after fixing the cause")
    )
    p.add_argument("id")
    p.set_defaults(handler=_retry)


# -- handlers -----------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    since, limit = paging_of(args)
    rt = runtime_of(args)
    today = clock.today()
    states = [HoldingState(args.state)] if args.state else None
    if args.overdue:  # overdue is decided per row (deadline and today), so all are read
        states = [s for s in (states or holdings.HELD) if s in holdings.HELD]
        limit = None
    if args.member:  # one member's part: filtered per row, then the latest of them
        partitions.require_member(rt, args.member)
        keep, limit = limit, None
    page, more = holdings.latest(rt, states=states, since_ns=since, limit=limit)
    rows = [_json(rt, h, today) for h in page]
    if args.overdue:
        rows = [r for r in rows if r["overdue"]]
    if args.member:
        rows = [r for r in rows if r["recipient"] == args.member]
        more = max(0, len(rows) - keep) if keep is not None else 0
        rows = rows[-keep:] if keep else rows
    if args.json:
        print_json(rows)
        print_footer(args, len(rows), more, N_("holding(s)"))
        return 0
    headers = [_("id"), _("state"), _("agreement/flow"), _("file"), _("size"), _("received"),
               _("deadline"), _("flags")]
    lines = [table.holding_row(r) for r in rows]
    if rt.settings.partitions:  # several members' data here: whose each holding is (区画)
        headers.insert(1, _("member"))
        lines = [[line[0], r["recipient"] or "-", *line[1:]] for line, r in zip(lines, rows,
                                                                                strict=True)]
    print(table.render(headers, lines) if rows else _("no holdings"))
    print_footer(args, len(rows), more, N_("holding(s)"))
    return 0


def _forward(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    fanout, children = forwarding.forward(rt, args.id, args.flow, args.split_by)
    states = {t.id: t for t in children}
    rows = [{"transfer": c.transfer, "member": c.member, "rows": c.rows, "sha256": c.sha256,
             "state": states[c.transfer].state if c.transfer in states else None}
            for c in fanout.children]
    if args.json:
        print_json({"fanout": fanout.id, "holding": fanout.holding, "flow": fanout.flow,
                    "rows": fanout.rows, "withheld": dict(fanout.withheld), "children": rows})
        return 0
    print(_("fan-out {id}: {rows} row(s) of holding {holding} split by {column} into {count} "
            "file(s)").format(id=fanout.id, rows=fanout.rows, holding=fanout.holding,
                              column=fanout.split_by, count=len(rows)))
    print(table.render([_("transfer"), _("member"), _("rows"), _("state"), _("sha256")],
                       [[r["transfer"], r["member"], str(r["rows"]), str(r["state"]),
                         str(r["sha256"])[:16]] for r in rows]))
    for reason, count in sorted(fanout.withheld.items()):
        print(_("withheld: {count} row(s): {reason}").format(count=count, reason=wording(reason)))
    print(_("next: a witness approves them all at once: tachiai approve {id} --key KEY").format(
        id=fanout.id))
    return 0


def _show(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    h = holdings.get(rt, args.id)
    data = _json(rt, h, clock.today())
    data["certificates"] = certificates_of(rt, h.id)
    # Forwarded to a party group: each fan-out, and where each member's part stands.
    data["fanouts"] = forwarding.parts_of(rt, h.id)
    data["thread"] = thread(rt, h)
    if args.json:
        print_json(data)
        return 0
    for key, value in data.items():
        if key in ("reasons", "certificates", "thread", "fanouts"):
            continue
        print(f"{label(key, 18)}: {value if value not in (None, []) else '-'}")
    for reason in data["reasons"]:
        print(_("            reason: {rule}: {message}").format(rule=reason['rule'],
                                                                 message=reason_text(reason)))
    for c in data["certificates"]:
        print(
            _("       certificate: {kind} by {handler} on {day}: {method}").format(
                kind=c['kind'], handler=c['handler'], day=c['signed_on'], method=c['method'])
        )
    for item in data["thread"]:
        print(_("            thread: {relation} {id} ({what})").format(
            relation=item['relation'], id=item['id'], what=item['what']))
    for f in data["fanouts"]:
        print(_("           fan-out: {id} on {flow}: {rows} rows, withheld {withheld}; "
                "undelivered: {undelivered}").format(
                    id=f['id'], flow=f['flow'], rows=f['rows'], withheld=f['withheld'] or 0,
                    undelivered=', '.join(f['undelivered']) or _('none')))
        for c in f["children"]:
            print(_("              part: {member} {rows} rows {state} ({transfer})").format(
                member=c['member'], rows=c['rows'], state=c['state'], transfer=c['transfer']))
    if h.status is HoldingState.RECEIVED:
        print(
            "\n" + _("next: a designated receiving handler signs the terms (`tachiai holdings "
                     "terms {id} --key KEY`, once per agreement), then `tachiai holdings open "
                     "{id} --key KEY`").format(id=h.id)
        )
    return 0


def _terms(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    h = holdings.get(rt, args.id)
    statement = terms_statement(agreement_of(rt, h), holder(rt, h))
    if args.statement:
        sys.stdout.buffer.write(statement)
        return 0
    sys.stdout.buffer.write(statement)  # the handler sees what they sign
    sys.stdout.flush()
    name = sign_terms(rt, h.id, signature_from(args, statement, TERMS_NAMESPACE))
    print("\n" + _("the recipient's obligations under {agreement} are signed by {name} "
                   "(recorded)").format(agreement=h.agreement, name=name))
    return 0


def _open(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    h = holdings.get(rt, args.id)
    now = dt.datetime.fromtimestamp(clock.now_ns() // 1_000_000_000, clock.JST)
    statement = open_request(h, now.isoformat())
    signature = sshsig.sign(statement, load_private_key(args.key), OPEN_NAMESPACE)
    with progress_line(sys.stderr, _("decrypting"), lambda: h.size or 0,
                       in_bytes=True) as progress:
        path = open_holding(rt, h.id, statement, signature, progress=progress)
    print(_("holding {id} opened into {path} (mode 0600; recorded)").format(id=h.id, path=path))
    if h.superseded_by:
        print(_("note: it was corrected by {id}; use that one for new work").format(
            id=h.superseded_by))
    return 0


def _certify(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    h = holdings.get(rt, args.id)
    today = clock.today()
    statement = certificate_statement(h, args.kind, args.method, today)
    if args.statement:
        sys.stdout.buffer.write(statement)
        return 0
    signature = signature_from(args, statement, CERTIFICATE_NAMESPACE)
    after = certify(rt, h.id, args.kind, args.method, today, signature)
    print(_("holding {id}: {kind} certified (recorded)").format(id=h.id, kind=KINDS[args.kind]))
    if after.erased_ns is not None:
        print(
            _("the gateway's own copies are erased: the key is destroyed and the encrypted "
              "copy removed")
        )
    return 0


def _retry(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    after = retry(rt, args.id, getpass.getuser())
    print(_("holding {id} is {state}; the daemon checks it again next").format(
        id=after.id, state=after.state))
    return 0


# -- private ------------------------------------------------------------------------------------


def _signing(p: argparse.ArgumentParser, namespace: str) -> None:
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--key", type=Path, help=_("your SSH private key: sign and submit"))
    how.add_argument(
        "--signature",
        type=Path,
        help=_("a signature made with `ssh-keygen -Y sign -n {namespace} -f KEY "
               "STATEMENT_FILE`").format(namespace=namespace),
    )
    how.add_argument(
        "--statement",
        action="store_true",
        help=_("print the statement to sign with ssh-keygen, and stop"),
    )


def _json(rt: Runtime, h: Holding, today: dt.date) -> dict[str, Any]:
    return {
        "id": h.id,
        "state": h.state,
        "agreement": h.agreement,
        "flow": h.flow,
        "provider": h.provider,
        "recipient": h.recipient,
        "transfer": h.transfer,
        "file_name": h.file_name,
        "delivered_name": h.delivered_name,
        "size": h.size,
        "sha256": h.sha256,
        "sealed_sha256": h.sealed_sha256,
        "profile": h.profile,
        "sender": h.sender,
        "witnesses": h.names("witnesses"),
        "handlers": h.names("handlers"),
        "received_on": h.received_on,
        "deadline": h.deadline,
        "overdue": holdings.is_overdue(h, today),
        "days_left": (dt.date.fromisoformat(h.deadline) - today).days if h.deadline else None,
        "openings": h.openings,
        "replies_to": h.replies_to,
        "corrects": h.corrects,
        "superseded_by": h.superseded_by,
        "correction_pending": holdings.correction_pending(h),
        "applied": clock.iso(h.applied_ns) if h.applied_ns else None,
        "erased": clock.iso(h.erased_ns) if h.erased_ns else None,
        "reasons": h.reason_list(),
        "created": clock.iso(h.created_ns),
        "updated": clock.iso(h.updated_ns),
    }
