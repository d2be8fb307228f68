"""`tachiai audit …`: read and verify the ledger (監査ログ), read-only, offline.

These commands need no gateway secret: given `--ledger PATH`, an auditor runs them on a copy.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from audit.ledger import Ledger
from gateway import clock
from gateway.cli_common import settings_of


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    audit = sub.add_parser("audit", parents=[common], help="query and verify the ledger")
    usub = audit.add_subparsers(metavar="ACTION")
    p = usub.add_parser("log", parents=[common], help="the ledger's events in order")
    p.add_argument("--ledger", type=Path, help="a ledger file (default: the configured one)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_log)
    p = usub.add_parser("verify", parents=[common], help="recompute every hash of the ledger")
    p.add_argument("--ledger", type=Path, help="a ledger file (default: the configured one)")
    p.set_defaults(handler=_verify)


def _ledger(args: argparse.Namespace) -> Ledger:
    path = args.ledger if args.ledger else settings_of(args).ledger_path
    return Ledger.open(Path(path), read_only=True)


def _log(args: argparse.Namespace) -> int:
    for ev in _ledger(args).events():
        if args.json:
            print(json.dumps(ev.as_dict(), ensure_ascii=False, sort_keys=True))
        else:
            print(f"{ev.seq:>6}  {clock.iso(ev.time_ns)}  {ev.kind:<20} {ev.subject or '-':<16}"
                  f" {ev.actor or '-'}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    report = _ledger(args).verify()
    print(f"the ledger is intact: {report.size} events, root {report.root.hex()}")
    return 0
