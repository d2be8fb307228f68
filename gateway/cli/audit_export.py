"""`tachiai audit query` and `tachiai audit report`: the ledger's events found and written out
(a table, JSON, CSV in UTF-8 with BOM or cp932, a workbook) and the handling report
(取扱状況報告) in Markdown, HTML or a workbook.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from audit import export
from audit.events import Event
from gateway.cli.audit_trust import open_for, trust
from gateway.cli.progress import progress_line
from gateway.errors import InputError, UsageError
from gateway.i18n import _
from gateway.state import clock


def query(args: argparse.Namespace) -> int:
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
    events = search(open_for(args), query)
    if args.format == "csv":
        _export(args, lambda out: _csv(events, out, args.encoding, args.replace))
    elif args.format == "xlsx":
        sheet = export.Sheet("events", EVENT_COLUMNS, _rows(events))
        _export(args, lambda out: export.write_xlsx(out, [sheet]))
    else:
        {"table": _table, "json": _json_array}[args.format](events)
    return 0


def report(args: argparse.Namespace) -> int:
    from audit.report import Period, build
    from audit.report_render import html_page, markdown, xlsx_sheets

    try:
        period = Period.parse(args.period)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _check_output(args, binary=args.format == "xlsx", files=("md", "html", "xlsx"))
    ledger = open_for(args)
    verification = None
    if not args.no_verify:
        key, notes = trust(args, quiet=True)
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


def export_options(p: argparse.ArgumentParser, *, encodings: bool) -> None:
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
