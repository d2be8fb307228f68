"""`tachiai agreements …`: list and check the agreements (確認書) and the handler registry."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.cli_common import print_json, runtime_of, settings_of
from gateway.policyfiles import load_agreements, load_registry


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    agreements = sub.add_parser("agreements", parents=[common], help="agreements (確認書)")
    asub = agreements.add_subparsers(metavar="ACTION")
    p = asub.add_parser("list", parents=[common], help="agreements and their flows")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_list)
    p = asub.add_parser("check", parents=[common], help="validate agreement and registry files")
    p.add_argument("paths", nargs="*", type=Path)
    p.set_defaults(handler=_check)


def _list(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    out: list[dict[str, Any]] = []
    for agreement in rt.agreements.values():
        out.append({
            "id": agreement.id, "title": agreement.title, "purpose": agreement.purpose,
            "valid_from": agreement.valid_from.isoformat(),
            "valid_until": agreement.valid_until.isoformat() if agreement.valid_until else None,
            "flows": [{
                "id": f.id, "from": f.provider, "to": f.recipient, "dataset": f.dataset,
                "witnesses": f.witnesses, "encryption": f.encryption, "onward": list(f.onward),
                "outbox": str(rt.settings.outbox(agreement.id, f.id))
                if f.provider == rt.settings.party else None,
            } for f in agreement.flows],
        })
    if args.json:
        print_json(out)
        return 0
    for a in out:
        print(f"{a['id']}: {a['purpose']}")
        for f in a["flows"]:
            print(f"  flow {f['id']}: {f['from']} → {f['to']} ({f['dataset']}, "
                  f"{f['witnesses']} witness(es), {f['encryption']})")
            if f["outbox"]:
                print(f"    outbox: {f['outbox']}")
    return 0


def _check(args: argparse.Namespace) -> int:
    if args.paths:
        load_agreements([str(p.absolute()) for p in args.paths], Path.cwd())
        print(f"{len(args.paths)} file(s) valid")
        return 0
    settings = settings_of(args)
    found = load_agreements(settings.agreements, settings.config_path.parent)
    load_registry(settings.registry_path)
    print(f"{len(found)} agreement(s) and the handler registry are valid")
    return 0
