"""`tachiai audit …`: verify, prove, query and report on the ledger (監査ログ), read-only.

Given `--ledger PATH` the commands work on an auditor's copy without the gateway's
configuration or secrets, and never write it (`--ledger postgresql://…`: a ledger on PostgreSQL,
read in read-only transactions); the public key comes from `--public-key` (or a
checkpoint folder's ledger.pub), never from inside the copied database. `public-key`,
`checkpoint` and `copy` are for the operator on the gateway itself. Which ledger and key a
command trusts: `audit_trust`; `query` and `report`: `audit_export`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audit import proofs
from audit.checkpoints import format_time
from gateway.cli import audit_export
from gateway.cli.audit_trust import (
    configured_key,
    covering,
    key_file,
    open_for,
    print_trust,
    read_text,
    trust,
)
from gateway.cli.closing import opened
from gateway.cli.common import Subparsers, group, settings_of
from gateway.cli.progress import progress_line
from gateway.errors import CheckFailed, UsageError
from gateway.evidence.checkpointing import (
    CheckpointService,
    CheckpointSettings,
    public_key,
)
from gateway.evidence.ledgers import open_ledger
from gateway.i18n import _, wording
from gateway.state import clock


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    _audit, usub = group(
        sub,
        "audit",
        common,
        help=_("verify, prove, query and report on the ledger (works on a copy: --ledger PATH)"),
    )
    ledger = argparse.ArgumentParser(add_help=False)
    ledger.add_argument(
        "--ledger",
        metavar="PATH|URL",
        help=_("a copy of the ledger (read-only; default: the configured ledger), or the URL of "
               "a ledger on PostgreSQL, postgresql://USER@HOST/DB (password from PGPASSWORD or "
               "PGPASSFILE, never in the URL)"),
    )
    trust = argparse.ArgumentParser(add_help=False)
    trust.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help=_("signed checkpoints kept outside the database: a checkpoint folder, a file of "
               "checkpoints or a syslog file (repeatable)"),
    )
    trust.add_argument(
        "--public-key",
        type=Path,
        metavar="FILE",
        help=_("the ledger's public key (ledger.pub) you were given"),
    )

    p = usub.add_parser("log", parents=[common, ledger], help=_("the ledger's events in order"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_log)

    p = usub.add_parser(
        "verify",
        parents=[common, ledger, trust],
        help=_("recompute every hash and check every signed checkpoint"),
    )
    p.add_argument(
        "--deep",
        action="store_true",
        help=_("also re-parse every event and insist on its canonical form (slower)"),
    )
    p.set_defaults(handler=_verify)

    p = usub.add_parser(
        "prove",
        parents=[common, ledger, trust],
        help=_("an inclusion proof of one event, as JSON (RFC 9162)"),
    )
    p.add_argument("seq", type=int, help=_("the event's sequence number"))
    p.set_defaults(handler=_prove)

    p = usub.add_parser("check-proof", parents=[common], help=_("check an inclusion proof offline"))
    p.add_argument("proof", type=Path)
    p.add_argument(
        "--public-key",
        type=Path,
        metavar="FILE",
        help=_("the ledger's public key (ledger.pub) you were given"),
    )
    p.set_defaults(handler=_check_proof)

    p = usub.add_parser("query", parents=[common, ledger], help=_("find events"))
    p.add_argument("--agreement")
    p.add_argument("--party", help=_("a party named in the event (provider, recipient)"))
    p.add_argument("--person", help=_("the handler who acted (the event's actor)"))
    p.add_argument("--kind", help=_("an event kind, or a family such as transfer.*"))
    p.add_argument("--subject", help=_("a transfer or holding id"))
    p.add_argument("--sha256", help=_("a file's SHA-256 (64 hex digits)"))
    p.add_argument("--since", help=_("from this date or time (JST unless given)"))
    p.add_argument("--until", help=_("before this time; a date includes the whole day"))
    p.add_argument("--limit", type=int)
    p.add_argument("--format", choices=("table", "json", "csv", "xlsx"), default="table")
    audit_export.export_options(p, encodings=True)
    p.set_defaults(handler=audit_export.query)

    p = usub.add_parser(
        "report",
        parents=[common, ledger, trust],
        help=_("the handling report (取扱状況報告) of an agreement"),
    )
    p.add_argument("--agreement", required=True)
    p.add_argument(
        "--period",
        required=True,
        help=_("YYYY-MM, YYYY-Qn (fiscal quarter: Q1 = April–June) or YYYY (fiscal year)"),
    )
    p.add_argument("--format", choices=("md", "html", "xlsx"), default="md")
    audit_export.export_options(p, encodings=False)
    p.add_argument(
        "--no-verify",
        action="store_true",
        help=_("skip verifying the ledger first (the report then says so)"),
    )
    p.set_defaults(handler=audit_export.report)

    p = usub.add_parser(
        "public-key",
        parents=[common],
        help=_("print the ledger's public key for auditors (on the gateway)"),
    )
    p.set_defaults(handler=_public_key)

    p = usub.add_parser(
        "checkpoint",
        parents=[common],
        help=_("sign a checkpoint now and write it out (on the gateway)"),
    )
    p.set_defaults(handler=_checkpoint)

    p = usub.add_parser(
        "copy", parents=[common, ledger], help=_("make a consistent copy of the ledger for an "
                                                 "auditor")
    )
    p.add_argument("destination", type=Path)
    p.set_defaults(handler=_copy)


# -- handlers -----------------------------------------------------------------------------------


def _log(args: argparse.Namespace) -> int:
    for ev in open_for(args).events():
        if args.json:
            print(json.dumps(ev.as_dict(), ensure_ascii=False, sort_keys=True))
        else:
            print(
                f"{ev.seq:>6}  {clock.iso(ev.time_ns)}  {ev.kind:<20} {ev.subject or '-':<16}"
                f" {ev.actor or '-'}"
            )
    return 0


def _verify(args: argparse.Namespace) -> int:
    ledger = open_for(args, lite=True)
    key, notes = trust(args)
    with progress_line(sys.stderr, _("verifying"), ledger.size) as progress:
        report = ledger.verify(progress, checkpoints=notes, key=key, deep=args.deep)
    print(_("the ledger is intact: {size} events, root {root}").format(
        size=report.size, root=report.root.hex()))
    print(
        (_("checked: every event's bytes, hash and indexed fields, the tree, {heads} tree "
           "head(s) and canonical form ({seconds} s)") if args.deep else
         _("checked: every event's bytes, hash and indexed fields, the tree, {heads} tree "
           "head(s) ({seconds} s)")).format(heads=report.heads, seconds=f"{report.seconds:.2f}")
    )
    print_trust(report, key)
    return 0


def _prove(args: argparse.Namespace) -> int:
    ledger = open_for(args, lite=True)
    key, notes = trust(args)
    chosen = covering(ledger, notes, key, args.seq)
    proof = proofs.prove(ledger, args.seq, chosen)
    print(json.dumps(proof.to_json(), ensure_ascii=False, indent=2))
    print(_("event {seq} proven against {checkpoint}").format(
        seq=args.seq, checkpoint=chosen.describe()), file=sys.stderr)
    return 0


def _check_proof(args: argparse.Namespace) -> int:
    key = key_file(args.public_key) if args.public_key else configured_key(args)
    if key is None:
        raise UsageError(_("give the ledger's public key: --public-key ledger.pub"))
    try:
        proof = proofs.load(read_text(args.proof))
        checked = proofs.check(proof, key)
    except proofs.ProofError as exc:
        raise CheckFailed(_("the proof does NOT hold: {problem}").format(
            problem=wording(str(exc)))) from None
    ev, cp = checked.event, checked.checkpoint.checkpoint
    print(
        _("the proof holds: event {seq} ({kind}, {subject}, {time}) is in the ledger "
          "{origin}").format(seq=ev.seq, kind=ev.kind, subject=ev.subject or "-",
                             time=clock.iso(ev.time_ns), origin=cp.origin)
    )
    print(_("as signed by {key} at {time} (tree size {size})").format(
        key=key.to_text(), time=format_time(cp.time_ns), size=cp.size))
    return 0


def _public_key(args: argparse.Namespace) -> int:
    print(public_key(CheckpointSettings.from_settings(settings_of(args))).to_text())
    return 0


def _checkpoint(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    # Imported here: this command alone needs the state database (the ledger record); the
    # others read the ledger only (tests/gateway/cli/test_startup.py).
    from gateway.evidence.ledger_guard import LedgerGuard
    from gateway.runtime import open_store

    ledger = opened(open_ledger(settings))
    service = CheckpointService(
        ledger, CheckpointSettings.from_settings(settings),
        guard=LedgerGuard(opened(open_store(settings)), ledger),
    )
    try:
        signed = service.checkpoint_now()
    finally:
        missed = service.close()  # remote places write in the background: wait for them
    if signed is None:
        print(_("nothing new to sign: the last checkpoint covers every event"))
    else:
        written = [s.name for s in service.sinks if s.name not in missed]
        print(_("signed {checkpoint}; written to {places}").format(
            checkpoint=signed.describe(), places=", ".join(written) or _("the ledger only")))
    if missed:
        print(
            _("WARNING: not written to {places} (see the log above); the ledger keeps it, "
              "and the next checkpoint that reaches it there supersedes it").format(
                places=", ".join(missed)),
            file=sys.stderr,
        )
    return 0


def _copy(args: argparse.Namespace) -> int:
    settings = None if args.ledger else settings_of(args)
    if settings is None:
        source, password_file = str(args.ledger), None
    else:
        source = settings.database_url or str(settings.ledger_path)
        password_file = settings.database_password_file
    dest: Path = args.destination
    if dest.exists():
        raise UsageError(_("{path} already exists").format(path=dest))
    from gateway import bootstrap
    from gateway.evidence.ledger_copy import copy_ledger

    events = copy_ledger(source, dest, password_file=password_file)
    counted = _(" ({count} events)").format(count=events) if events is not None else ""
    checkpoints = dest.absolute().parent / "checkpoints"
    print(
        _("copied the ledger{counted} to {dest}; an auditor verifies it against the "
          "checkpoints copied beside it (before the ledger) and the gateway's public key "
          "(`{tachiai} audit public-key > ledger.pub`): `{tachiai} audit verify --ledger {dest} "
          "--checkpoint {checkpoints} --public-key ledger.pub`").format(
            counted=counted, dest=dest, tachiai=bootstrap.executable(), checkpoints=checkpoints)
    )
    return 0
