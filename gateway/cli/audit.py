"""`tachiai audit …`: verify, prove, query and report on the ledger (監査ログ), read-only.

Given `--ledger PATH` the commands work on an auditor's copy without the gateway's
configuration or secrets, and never write it (`--ledger postgresql://…`: a ledger on PostgreSQL,
read in read-only transactions); the public key comes from `--public-key` (or a
checkpoint folder's ledger.pub), never from inside the copied database. `public-key`,
`checkpoint` and `copy` are for the operator on the gateway itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from audit import export, proofs
from audit.checkpoints import SignedCheckpoint, format_time, parse, read_places
from audit.events import Event
from audit.notes import NoteError, NoteVerifier
from gateway.cli.common import Subparsers, group, settings_of
from gateway.cli.progress import progress_line
from gateway.errors import CheckFailed, InputError, NotFound, StateError, UsageError
from gateway.evidence.checkpointing import (
    CheckpointService,
    CheckpointSettings,
    load_key,
    public_key,
)
from gateway.evidence.ledgers import open_ledger
from gateway.i18n import _, wording
from gateway.state import clock

# The database layer, the query, report and copy code are imported by the commands that use
# them: `audit verify` and `audit prove` on the gateway read the ledger with sqlite3 alone
# (audit.lite), and start in a fraction of the time.
if TYPE_CHECKING:
    from audit.ledger import Ledger
    from audit.verify import VerifyReport


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
    _export_options(p, encodings=True)
    p.set_defaults(handler=_query)

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
    _export_options(p, encodings=False)
    p.add_argument(
        "--no-verify",
        action="store_true",
        help=_("skip verifying the ledger first (the report then says so)"),
    )
    p.set_defaults(handler=_report)

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
    for ev in _open(args).events():
        if args.json:
            print(json.dumps(ev.as_dict(), ensure_ascii=False, sort_keys=True))
        else:
            print(
                f"{ev.seq:>6}  {clock.iso(ev.time_ns)}  {ev.kind:<20} {ev.subject or '-':<16}"
                f" {ev.actor or '-'}"
            )
    return 0


def _verify(args: argparse.Namespace) -> int:
    ledger = _open(args, lite=True)
    key, notes = _trust(args)
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
    _print_trust(report, key)
    return 0


def _prove(args: argparse.Namespace) -> int:
    ledger = _open(args, lite=True)
    key, notes = _trust(args)
    chosen = _covering(ledger, notes, key, args.seq)
    proof = proofs.prove(ledger, args.seq, chosen)
    print(json.dumps(proof.to_json(), ensure_ascii=False, indent=2))
    print(_("event {seq} proven against {checkpoint}").format(
        seq=args.seq, checkpoint=chosen.describe()), file=sys.stderr)
    return 0


def _check_proof(args: argparse.Namespace) -> int:
    key = _key_file(args.public_key) if args.public_key else _configured_key(args)
    if key is None:
        raise UsageError(_("give the ledger's public key: --public-key ledger.pub"))
    try:
        proof = proofs.load(_read(args.proof))
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


def _query(args: argparse.Namespace) -> int:
    from audit.query import Query, parse_when, search

    try:
        query = Query(
            agreement=args.agreement,
            party=args.party,
            person=args.person,
            kind=args.kind,
            subject=args.subject,
            sha256=args.sha256.lower() if args.sha256 else None,
            since_ns=parse_when(args.since) if args.since else None,
            until_ns=parse_when(args.until, end=True) if args.until else None,
            limit=args.limit,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _check_output(args, binary=args.format == "xlsx", files=("csv", "xlsx"))
    events = search(_open(args), query)
    if args.format == "csv":
        _export(args, lambda out: _csv(events, out, args.encoding, args.replace))
    elif args.format == "xlsx":
        sheet = export.Sheet("events", EVENT_COLUMNS, _rows(events))
        _export(args, lambda out: export.write_xlsx(out, [sheet]))
    else:
        {"table": _table, "json": _json_array}[args.format](events)
    return 0


def _report(args: argparse.Namespace) -> int:
    from audit.report import Period, build
    from audit.report_render import html_page, markdown, xlsx_sheets

    try:
        period = Period.parse(args.period)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _check_output(args, binary=args.format == "xlsx", files=("md", "html", "xlsx"))
    ledger = _open(args)
    verification = None
    if not args.no_verify:
        key, notes = _trust(args, quiet=True)
        with progress_line(sys.stderr, _("verifying"), ledger.size) as progress:
            verification = ledger.verify(progress, checkpoints=notes, key=key)
    report = build(ledger, args.agreement, period, now_ns=clock.now_ns(), verification=verification)
    if args.format == "xlsx":
        _export(args, lambda out: export.write_xlsx(out, xlsx_sheets(report)))
    elif args.output:
        text = markdown(report) if args.format == "md" else html_page(report)
        _export(args, lambda out: out.write(text.encode("utf-8")))
    else:
        sys.stdout.write(markdown(report) if args.format == "md" else html_page(report))
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

    ledger = open_ledger(settings)
    service = CheckpointService(
        ledger, CheckpointSettings.from_settings(settings),
        guard=LedgerGuard(open_store(settings), ledger),
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


# -- helpers ------------------------------------------------------------------------------------


def _open(args: argparse.Namespace, *, lite: bool = False) -> Ledger:
    """The ledger to read: a copy (--ledger), or the gateway's; `lite` for what
    `audit.lite.LiteLedger` offers (events, proofs, verification) on SQLite."""
    if getattr(args, "ledger", None):
        from audit.database import is_postgres_url
        from audit.ledger import Ledger

        if is_postgres_url(args.ledger):
            return Ledger.connect(args.ledger, read_only=True, create=False)
        return Ledger.open(Path(args.ledger), snapshot=True)
    return open_ledger(settings_of(args), read_only=True, lite=lite)


def _trust(
    args: argparse.Namespace, *, quiet: bool = False
) -> tuple[NoteVerifier | None, list[tuple[str, str]]]:
    """The trusted key and the external checkpoints: from the command line on a copy, from
    the configuration on the gateway itself."""
    places: list[Path] = list(args.checkpoint)
    on_gateway = not args.ledger and not places
    settings = CheckpointSettings.from_settings(settings_of(args)) if on_gateway else None
    if settings is not None:
        places = [d for d in settings.directories if d.is_dir()]
    try:
        notes, offered = read_places(places)
    except FileNotFoundError as exc:
        raise NotFound(_("no checkpoints at {path}").format(path=exc.filename)) from None
    except (OSError, NoteError) as exc:
        raise InputError(_("cannot read the checkpoints: {problem}").format(problem=exc)) from None
    key: NoteVerifier | None = None
    if args.public_key:
        key = _key_file(args.public_key)
    elif settings is not None:
        key = _configured_key(args)
    elif offered is not None:
        key = offered
        if not quiet:
            print(
                _("note: using the public key found beside the checkpoints, {key}; compare "
                  "it with the key you were given").format(key=key.to_text()),
                file=sys.stderr,
            )
    return key, notes


def _configured_key(args: argparse.Namespace) -> NoteVerifier | None:
    try:
        settings = CheckpointSettings.from_settings(settings_of(args))
        return load_key(settings.key_path).verifier()
    except FileNotFoundError:
        return None


def _key_file(path: Path) -> NoteVerifier:
    try:
        return NoteVerifier.from_text(_read(path))
    except NoteError as exc:
        raise InputError(_("{path} is not a ledger public key: {problem}").format(
            path=path, problem=exc)) from None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(_("no file {path}").format(path=path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(_("cannot read {path}: {problem}").format(path=path,
                                                                    problem=exc)) from None


def _print_trust(report: VerifyReport, key: NoteVerifier | None) -> None:
    latest = report.latest_signed
    if key is None:
        print(
            _("WARNING: no trusted public key was given, so no checkpoint signature was "
              "checked. This shows the ledger is consistent in itself, not that it is the one "
              "the gateway signed: pass --public-key (the ledger.pub you were given) and "
              "--checkpoint (the copies kept outside the database).")
        )
    elif latest is None:
        print(
            _("WARNING: no checkpoint signed by {key} was found, so nothing shows this "
              "ledger is the one the gateway signed; pass --checkpoint").format(key=key.to_text())
        )
    else:
        cp = latest.checkpoint
        print(
            _("signed: {count} checkpoint(s) by {key} match; the latest, {time}, covers "
              "{size} events ({source})").format(count=len(report.signed), key=key.to_text(),
                                                 time=format_time(cp.time_ns), size=cp.size,
                                                 source=latest.source)
        )
        if report.size > cp.size:
            print(
                _("events {first}..{last} came after the latest checkpoint and are not yet "
                  "covered by a signature").format(first=cp.size, last=report.size - 1)
            )


def _covering(
    ledger: Ledger, notes: list[tuple[str, str]], key: NoteVerifier | None, seq: int
) -> SignedCheckpoint:
    best: SignedCheckpoint | None = None
    for note, source in [*notes, *ledger.checkpoints()]:
        try:
            signed = parse(note, source, key)
        except NoteError:
            continue
        size = signed.checkpoint.size
        if size > seq and (best is None or size > best.checkpoint.size):
            best = signed
    if best is None:
        raise StateError(
            _("no signed checkpoint covers event {seq} yet").format(seq=seq),
            hint=_("wait for the daemon's next checkpoint (about a second), or run "
                   "`tachiai audit checkpoint` on the gateway"),
        )
    return best


def _export_options(p: argparse.ArgumentParser, *, encodings: bool) -> None:
    p.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help=_("write the export to FILE (required for xlsx on a terminal)"),
    )
    if encodings:
        p.add_argument(
            "--encoding",
            choices=export.CSV_ENCODINGS,
            default="utf-8-sig",
            help=_("CSV encoding: utf-8-sig (UTF-8 with BOM, the default) or cp932 (Shift_JIS)"),
        )
        p.add_argument(
            "--replace",
            action="store_true",
            help=_("write ? for characters the encoding cannot hold (and count them) instead of "
                   "refusing"),
        )


def _check_output(args: argparse.Namespace, *, binary: bool, files: tuple[str, ...]) -> None:
    if args.output and args.format not in files:
        raise UsageError(_("--output is for --format {formats}").format(formats=", ".join(files)))
    if binary and not args.output and sys.stdout.isatty():
        raise UsageError(
            _("--format {format} is binary and is not written to a terminal").format(
                format=args.format),
            hint=_("add --output FILE.{format}, or redirect the output to a file").format(
                format=args.format),
        )


def _export(args: argparse.Namespace, write: Callable[[IO[bytes]], object]) -> object:
    sys.stdout.flush()
    try:
        return export.emit(write, args.output, sys.stdout.buffer)
    except export.UnencodableCell as exc:
        raise InputError(
            _("the export was refused: {problem}").format(problem=exc),
            hint=_("use --encoding utf-8-sig (the default), or --replace to write ? in its "
                   "place"),
        ) from None
    except OSError as exc:
        raise InputError(_("cannot write {path}: {problem}").format(
            path=args.output, problem=exc.strerror)) from None


EVENT_COLUMNS = ("seq", "time", "kind", "subject", "agreement", "actor", "data")


def _rows(events: Iterator[Event]) -> Iterator[list[str]]:
    for ev in events:
        yield [
            str(ev.seq),
            clock.iso(ev.time_ns),
            ev.kind,
            ev.subject or "",
            ev.agreement or "",
            ev.actor or "",
            json.dumps(dict(ev.data), ensure_ascii=False, sort_keys=True),
        ]


def _table(events: Iterator[Event]) -> None:
    count = 0
    for seq, when, kind, subject, agreement, actor, _data in _rows(events):
        print(
            f"{seq:>7}  {when}  {kind:<20} {subject or '-':<16} {agreement or '-':<22} "
            f"{actor or '-'}"
        )
        count += 1
    print(_("(1 event)") if count == 1 else _("({count} events)").format(count=count),
          file=sys.stderr)


def _json_array(events: Iterator[Event]) -> None:
    first = True
    sys.stdout.write("[")
    for ev in events:
        item = {**ev.as_dict(), "time": clock.iso(ev.time_ns)}
        sys.stdout.write(
            ("\n  " if first else ",\n  ") + json.dumps(item, ensure_ascii=False, sort_keys=True)
        )
        first = False
    sys.stdout.write("\n]\n")


def _csv(events: Iterator[Event], out: IO[bytes], encoding: str, replace: bool) -> None:
    replaced = export.write_csv(out, EVENT_COLUMNS, _rows(events), encoding=encoding,
                                replace=replace)
    if replaced:
        print(_("WARNING: {count} character(s) that {encoding} cannot hold were written as ?")
              .format(count=replaced, encoding=encoding), file=sys.stderr)
