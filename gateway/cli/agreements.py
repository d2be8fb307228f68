"""`tachiai agreements list|check|show`: the agreements (確認書) and their registries, for
administrators and auditors (`tachiai calendar`, their due dates, is in gateway.cli.calendar).

`check` exits 1 when any file has a problem, naming file, line, key and fix; `show` and
`calendar` work from the configured agreements, or the bundled ones when there is no
configuration. Output keys of --json are stable.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from gateway.cli.common import Subparsers, group, print_json, runtime_of, settings_of
from gateway.config.policyfiles import (
    BUNDLED_DIR,
    CheckReport,
    agreement_path,
    bundled_agreement_paths,
    check_configured,
    check_paths,
    load_agreements,
    problems_error,
)
from gateway.config.settings import config_path_from
from gateway.errors import CheckFailed, NotFound
from gateway.i18n import _, wording
from gateway.state import clock
from policies.agreement import (
    ENCRYPTION_PROFILES,
    FLOW_KINDS,
    LEGAL_BASES,
    MEDIA,
    Agreement,
    Flow,
)
from policies.onward import reachable_parties
from policies.schedule import due_dates, first_period, next_due
from policies.terms import OBLIGATIONS, REPORT_EVERY, RETENTION_AFTER, RETENTION_THEN

NEXT_DUE_COUNT = 3


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    _agreements, asub = group(sub, "agreements", common, help=_("agreements (確認書)"))
    p = asub.add_parser("list", parents=[common], help=_("agreements and their flows"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_list)
    p = asub.add_parser(
        "check",
        parents=[common],
        help=_("validate agreement, delegation and handler registry files; exit 1 on any problem"),
    )
    p.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help=_("files to check (default: the configured agreements and registry)"),
    )
    p.add_argument(
        "--bundled", action="store_true", help=_("check the agreements bundled with tachiai")
    )
    p.set_defaults(handler=_check)
    p = asub.add_parser(
        "show", parents=[common], help=_("the terms, flows and next due dates of one agreement")
    )
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_show)


def find_agreement(args: argparse.Namespace, agreement_id: str) -> Agreement:
    """A configured agreement by id, else a bundled one (also without any configuration).

    Raises:
        NotFound: no such agreement. ConfigError: its files are invalid.
    """
    path = config_path_from(getattr(args, "config", None))
    if path.exists():
        settings = settings_of(args)
        configured = load_agreements(settings.agreements, settings.config_path.parent)
        if agreement_id in configured:
            return configured[agreement_id]
    if (BUNDLED_DIR / f"{agreement_id}.toml").is_file() and "/" not in agreement_id:
        return load_agreements([agreement_id], BUNDLED_DIR)[agreement_id]
    known = ", ".join(p.stem for p in bundled_agreement_paths())
    raise NotFound(
        _("no agreement {id}").format(id=repr(agreement_id)),
        hint=_("use a configured agreement id, or a bundled one: {known}").format(known=known),
    )


def _list(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    out: list[dict[str, Any]] = []
    for agreement in rt.agreements.values():
        out.append(
            {
                "id": agreement.id,
                "title": agreement.title,
                "purpose": agreement.purpose,
                "valid_from": agreement.valid_from.isoformat(),
                "valid_until": agreement.valid_until.isoformat() if agreement.valid_until else None,
                "flows": [
                    {
                        "id": f.id,
                        "from": f.provider,
                        "to": f.recipient,
                        "dataset": f.dataset,
                        "witnesses": f.witnesses,
                        "encryption": f.encryption,
                        "onward": list(f.onward),
                        "outbox": str(rt.settings.outbox(agreement.id, f.id))
                        if f.provider == rt.settings.party
                        else None,
                    }
                    for f in agreement.flows
                ],
            }
        )
    if args.json:
        print_json(out)
        return 0
    for a in out:
        print(f"{a['id']}: {a['purpose']}")
        for f in a["flows"]:
            print(
                _("  flow {id}: {provider} → {recipient} ({dataset}, {witnesses} witness(es), "
                  "{encryption})").format(id=f['id'], provider=f['from'], recipient=f['to'],
                                          dataset=f['dataset'], witnesses=f['witnesses'],
                                          encryption=f['encryption'])
            )
            if f["outbox"]:
                print(_("    outbox: {path}").format(path=f['outbox']))
    return 0


def _check(args: argparse.Namespace) -> int:
    """Raises: CheckFailed (exit 1) listing every problem, with file, line, key and fix."""
    today = clock.today()
    if args.paths:
        report = check_paths([p.absolute() for p in args.paths], today)
    elif args.bundled:
        paths = bundled_agreement_paths()
        report = check_paths(paths, today)
    else:
        report = check_configured(settings_of(args), today)
    _print_report(report)
    if report.problems:
        raise problems_error(report.problems, CheckFailed)
    print(
        (_("all valid: {count} agreement(s)") if report.warnings
         else _("all valid: {count} agreement(s), no warnings")).format(
            count=len(report.agreements))
    )
    return 0


def _print_report(report: CheckReport) -> None:
    for line in report.valid:
        print(_("ok: {line}").format(line=wording(str(line))))
    for warning in report.warnings:
        print(_("warning: {warning}").format(warning=wording(str(warning))))


def _show(args: argparse.Namespace) -> int:
    agreement = find_agreement(args, args.id)
    summary = agreement_summary(agreement, clock.today())
    if args.json:
        print_json(summary)
        return 0
    for line in summary_lines(summary):
        print(line)
    return 0


def agreement_summary(a: Agreement, today: dt.date) -> dict[str, Any]:
    """The terms of an agreement as JSON-ready data, with the next due dates from `today`."""
    return {
        "id": a.id,
        "title": a.title,
        "references": list(a.references),
        "concluded": _iso(a.concluded),
        "valid_from": a.valid_from.isoformat(),
        "valid_until": _iso(a.valid_until),
        "effective_until": _iso(a.effective_until),
        "in_force_today": a.in_force(today),
        "renewal": None
        if a.renewal is None
        else {
            "every": a.renewal.every,
            "renewed": [
                {"until": r.until.isoformat(), "decided": _iso(r.decided), "reference": r.reference}
                for r in a.renewal.renewed
            ],
        },
        "purpose": a.purpose,
        "legal_basis": a.legal_basis,
        "legal_basis_words": LEGAL_BASES[a.legal_basis],
        "legal_basis_text": a.legal_basis_text,
        "parties": [
            {
                "id": p.id,
                "name": p.name,
                "kind": p.kind,
                "signatory": p.signatory,
                "designates": sorted(p.designates),
            }
            for p in a.parties.values()
        ],
        "flows": [_flow_summary(a, f, today) for f in a.flows],
        "datasets": [
            {
                "id": d.id,
                "title": d.title,
                "format": d.format,
                "encodings": list(d.encodings),
                "my_number": d.my_number,
                "categories": [{"id": c.id, "name": c.name} for c in d.categories],
                "columns": [
                    {
                        "name": c.name,
                        "type": c.type,
                        "required": c.required,
                        "max_length": c.max_length,
                    }
                    for c in d.columns
                ],
            }
            for d in a.datasets.values()
        ],
        "scope": None
        if a.scope is None
        else {
            "flows": list(a.scope.flows),
            "column": a.scope.column,
            "outside": a.scope.outside,
            "as_of": a.scope.as_of,
            "registry": a.scope.registry,
            "municipalities": len(a.delegations.entries) if a.delegations else None,
            "registry_as_of": _iso(a.delegations.as_of) if a.delegations else None,
        },
        "onward": {
            "chain": {k: list(v) for k, v in a.onward_chain.items()},
            "contractors": sorted(a.contractors),
        },
        "retention": None
        if a.retention is None
        else {
            "then": a.retention.then,
            "after": a.retention.after,
            "certificate": a.retention.certificate,
            "max_days": a.retention.max_days,
        },
        "report": None if a.report is None else {"every": a.report.every, "to": a.report.to},
        "corrections": a.corrections,
        "obligations": [{"id": o.id, "party": o.party, "text": o.text} for o in a.obligations],
        "my_number": "forbidden in every dataset",
        "clauses": dict(a.clauses),
        "notes": a.notes,
    }


def summary_lines(s: dict[str, Any]) -> list[str]:
    """The summary as text for a person."""
    out = [
        f"{s['id']}: {s['title']}",
        _("  references: {references}").format(references=", ".join(s['references']) or "-"),
        _("  concluded {concluded}; in force {start} to {end}").format(
            concluded=s['concluded'] or "-", start=s['valid_from'],
            end=s['effective_until'] or _("(no end)"))
        + ("" if s['in_force_today'] else _(" — NOT in force today")),
    ]
    if s["renewal"]:
        done = ", ".join(r["until"] for r in s["renewal"]["renewed"]) or _("none recorded yet")
        out.append(_("  renewal: {every} (renewed until: {done})").format(
            every=s['renewal']['every'], done=done))
    out += [
        _("  purpose: {purpose}").format(purpose=s['purpose']),
        _("  legal basis: {basis}").format(basis=s['legal_basis_words'])
        + (" — " + s['legal_basis_text'] if s['legal_basis_text'] else ""),
        _("  parties:"),
    ]
    for p in s["parties"]:
        extra = (_("; designates {parties}").format(parties=", ".join(p['designates']))
                 if p["designates"] else "")
        out.append(f"    {p['id']}: {p['name']} ({p['kind']}{extra})")
    out.append(_("  flows:"))
    for f in s["flows"]:
        out.append(
            _("    {id}: {provider} → {recipient}, {kind} ({kind_words}), dataset {dataset}")
            .format(id=f['id'], provider=f['from'], recipient=f['to'], kind=f['kind'],
                    kind_words=f['kind_words'], dataset=f['dataset'])
        )
        out.append(_("      schedule: {schedule}").format(schedule=f['schedule']))
        for due in f["next_due"]:
            out.append(_("      due: period {period} by {due}").format(period=due['period'],
                                                                     due=due['due']))
        out.append(
            _("      {witnesses} witness(es) besides the sender; {encryption}; medium: {medium}")
            .format(witnesses=f['witnesses'], encryption=ENCRYPTION_PROFILES[f['encryption']],
                    medium=MEDIA[f['medium']])
        )
        out.append(
            _("      onward: {parties}").format(parties=", ".join(f['onward']) or _("nobody"))
            + (_("; replies to {flow}").format(flow=f['reply_to']) if f['reply_to'] else "")
        )
    for d in s["datasets"]:
        fmt = d["format"] + (f", {' / '.join(d['encodings'])}" if d["encodings"] else "")
        out.append(
            _("  dataset {id} ({format}; My Number {my_number}): {columns}").format(
                id=d['id'], format=fmt, my_number=d['my_number'],
                columns=", ".join(c["name"] for c in d["columns"]))
        )
        for c in d["categories"]:
            out.append(_("    category {id}: {name}").format(id=c['id'], name=c['name']))
    if s["scope"]:
        sc = s["scope"]
        out.append(
            _("  scope (委任状): rows by {column}; outside rows: {outside}; registry {registry} "
              "({count} municipalities, as of {as_of})").format(
                column=sc['column'], outside=sc['outside'], registry=sc['registry'],
                count=sc['municipalities'], as_of=sc['registry_as_of'] or "-")
        )
    chain = "; ".join(f"{k} → {', '.join(v) or _('nobody')}"
                      for k, v in s["onward"]["chain"].items())
    out.append(
        _("  onward: {chain}; contractors allowed for: {contractors}").format(
            chain=chain or _("nobody"),
            contractors=", ".join(s['onward']['contractors']) or _("nobody"))
    )
    if s["retention"]:
        r = s["retention"]
        out.append(
            _("  retention: {then} {after}").format(then=RETENTION_THEN[r['then']],
                                                    after=RETENTION_AFTER[r['after']])
            + (_(", within {days} days").format(days=r['max_days']) if r['max_days'] else "")
            + (_(", certified") if r['certificate'] else "")
        )
    if s["report"]:
        out.append(
            _("  handling report: {every}, to {to}").format(
                every=REPORT_EVERY[s['report']['every']], to=s['report']['to'])
        )
    if s["corrections"]:
        out.append(_("  corrections: the recipient applies corrections (訂正に応じる)"))
    for o in s["obligations"]:
        out.append(
            _("  obligation of {party}: {text}").format(party=o['party'], text=o['text'])
            + ("" if o['text'] == OBLIGATIONS[o['id']] else " — " + OBLIGATIONS[o['id']])
        )
    out.append(_("  My Number (個人番号): forbidden in every dataset"))
    return out


def _flow_summary(a: Agreement, f: Flow, today: dt.date) -> dict[str, Any]:
    upcoming: list[dict[str, str]] = []
    nxt = next_due(a, f, today)
    if nxt is not None:
        upcoming = [
            {"period": str(p), "due": d.isoformat()}
            for p, d in due_dates(a, f, nxt[0], NEXT_DUE_COUNT)
            if a.in_force(d)
        ]
    return {
        "id": f.id,
        "title": f.title,
        "kind": f.kind,
        "kind_words": FLOW_KINDS[f.kind],
        "from": f.provider,
        "to": f.recipient,
        "dataset": f.dataset,
        "witnesses": f.witnesses,
        "encryption": f.encryption,
        "medium": f.medium,
        "onward": list(f.onward),
        "reaches": list(reachable_parties(a, f.recipient)),
        "reply_to": f.reply_to,
        "legal_basis": a.basis_of(f),
        "schedule": f.schedule.words,
        "first_period": str(first_period(a, f)) if f.schedule.monthly else None,
        "catch_up_from": _iso(f.schedule.catch_up_from),
        "next_due": upcoming,
    }


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day is not None else None


__all__ = ["agreement_path", "agreement_summary", "find_agreement", "register"]
