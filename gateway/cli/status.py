"""`tachiai status [--json]`: one screen of what waits for whom.

Parsing and printing only; what is shown is gathered in `gateway.status`. The JSON keys are
stable; the human view prints each section as a table, and says so when a section is empty.
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.common import Subparsers, print_json, runtime_of
from gateway.cli.table import render, size, when
from gateway.i18n import _, wording
from gateway.status import gather


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("status", parents=[common], help=_("what waits for whom, on one screen"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    data = gather(runtime_of(args))
    if args.json:
        print_json(data)
        return 0
    _section(_("Awaiting approval (承認待ち)"), data["awaiting_approval"],
             [_("id"), _("agreement/flow"), _("file"), _("size"), _("since"), _("expires"),
              _("approved"), _("waits for")],
             lambda r: [r["id"], f"{r['agreement']}/{r['flow']}", r["file_name"],
                        size(r["size"]), when(r["since"]), when(r["expires"]),
                        f"{len(r['approvals'])}/{r['required']}",
                        ", ".join(r["witnesses"])
                        + (_(" [duplicate of {id}]").format(id=r['duplicate_of'])
                           if r["duplicate_of"] else "")])
    _section(_("Failed deliveries (送信失敗)"), data["failed"],
             [_("id"), _("agreement/flow"), _("file"), _("size"), _("since"), _("attempts"),
              _("reason")],
             lambda r: [r["id"], f"{r['agreement']}/{r['flow']}", r["file_name"],
                        size(r["size"]), when(r["since"]), r["attempts"],
                        wording(str(r["reason"] or ""))])
    _section(_("Holdings near or past their deadline (消去・返却期限)"), data["holdings"],
             [_("id"), _("agreement/flow"), _("state"), _("deadline"), _("days left"),
              _("handlers")],
             lambda r: [r["id"], f"{r['agreement']}/{r['flow']}",
                        r["state"] + (_(" OVERDUE") if r["overdue"] else ""), r["deadline"],
                        r["days_left"], r["handlers"]])
    _section(_("Late provisions (提供遅延)"), data["late"],
             [_("agreement/flow"), _("period"), _("due"), _("rule")],
             lambda r: [f"{r['agreement']}/{r['flow']}"
                        + (f" → {r['member']}" if r.get("member") else ""),
                        r["period"], r["due"], r["rule"]])
    failing = [r for r in data["checkpoints"] if r["failing"]]
    _section(_("Checkpoint places failing (チェックポイント)"), failing,
             [_("place"), _("status"), _("latest")],
             lambda r: [r["place"], r["status"], when(r["latest"])],
             empty=_("none ({count} place(s) checked)").format(count=len(data['checkpoints'])))
    _section(_("Working on (処理中)"), data["working_on"],
             [_("transfer"), _("step"), _("done"), _("bytes"), _("rate"), _("elapsed"),
              _("node/worker")],
             lambda r: [r["transfer"], r["step"], f"{r['percent']}%",
                        f"{size(r['done'])} / {size(r['total'])}", f"{size(r['rate'])}/s",
                        _("{seconds} s").format(seconds=round(r["elapsed"])),
                        f"{r['node']}/{r['worker']}"])
    waiting = data["awaiting_approval"]
    if waiting:
        print(_("next: a witness runs `tachiai approve {id} --key KEY`").format(
            id=waiting[0]['id']))
    return 0


def _section(title: str, rows: list[dict[str, Any]], headers: list[str],
             line: Any, empty: str | None = None) -> None:
    print(f"{title}: {len(rows) if rows else empty or _('none')}")
    if rows:
        print(render(headers, [line(r) for r in rows], indent="  "))
    print()
