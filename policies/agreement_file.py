"""The agreement file format: one TOML table per 確認書, parsed into `Agreement`.

Owns the keys an agreement file may hold and the cross-checks between them (a flow's parties
exist, a scope's column is a local government code, an obligation has the term that enforces
it). Every problem is reported at once with its key and fix; line numbers are added by the
loader, which has the text. Pure: it never reads a file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from policies.agreement import (
    ENCRYPTION_PROFILES,
    FLOW_KINDS,
    LEGAL_BASES,
    MEDIA,
    PARTY_KINDS,
    Agreement,
    Dataset,
    Flow,
    Party,
)
from policies.agreement_terms import TermsReader, parse_schedule
from policies.dataset_file import ID_PATTERN, parse_datasets
from policies.errors import Problems, known
from policies.handlers import ROLES
from policies.obligation_file import parse_clauses, parse_obligations
from policies.wording import R_

__all__ = ["TOP_LEVEL_KEYS", "parse_agreement"]

TOP_LEVEL_KEYS = frozenset(
    {
        "id",
        "title",
        "references",
        "concluded",
        "valid_from",
        "valid_until",
        "purpose",
        "legal_basis",
        "legal_basis_text",
        "renewal",
        "parties",
        "flows",
        "datasets",
        "onward",
        "scope",
        "retention",
        "report",
        "corrections",
        "obligations",
        "clauses",
        "notes",
        "witness_keys",
    }
)
_FLOW_KEYS = frozenset(
    {
        "id",
        "title",
        "kind",
        "from",
        "to",
        "dataset",
        "witnesses",
        "encryption",
        "onward",
        "schedule",
        "legal_basis",
        "medium",
        "reply_to",
    }
)
_PARTY_KEYS = frozenset({"name", "kind", "signatory", "designates"})


def parse_agreement(data: Mapping[str, Any], source: str) -> Agreement:
    """Parse one agreement file's table.

    Raises:
        PolicyFileError: listing every problem found, each with its key and fix.
    """
    p = Problems(source)
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            p.fail(
                key, R_("unknown key"), R_("remove it or use one of: {choices}",
                                       choices=', '.join(sorted(TOP_LEVEL_KEYS)))
            )
    agreement_id = _text(data, "id", p)
    if agreement_id and not ID_PATTERN.fullmatch(agreement_id):
        p.fail(
            "id",
            R_("not a valid id"),
            R_('use lowercase letters, digits and hyphens, e.g. id = "isa-nhi-status-loss"'),
        )
    basis = data.get("legal_basis")
    if not known(basis, LEGAL_BASES):
        p.fail("legal_basis", R_("unknown legal basis"), R_("use one of: {choices}",
                                                        choices=', '.join(LEGAL_BASES)))
    refs = data.get("references", [])
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        p.fail("references", R_("not a list of strings"), R_('write references = ["…"]'))
        refs = []
    concluded = _date(data, "concluded", p)
    valid_from = _date(data, "valid_from", p) or concluded
    if valid_from is None and "valid_from" not in data:
        p.fail(
            "valid_from",
            R_("missing"),
            R_("write the first day in force, e.g. valid_from = 2023-03-29 (or give concluded, "
               "which it then defaults to)"),
        )
    valid_until = _date(data, "valid_until", p)
    if valid_from and valid_until and valid_until < valid_from:
        p.fail("valid_until", R_("ends before valid_from"), R_("correct the period of validity"))
    parties = _parties(data.get("parties"), p)
    datasets = parse_datasets(data.get("datasets"), p)
    terms = TermsReader(data, parties, p)
    chain, contractors = terms.onward()
    flows = _flows(data.get("flows"), parties, datasets, chain, p)
    agreement = Agreement(
        id=agreement_id,
        title=_text(data, "title", p),
        purpose=_text(data, "purpose", p),
        legal_basis=str(basis),
        references=tuple(refs),
        concluded=concluded,
        valid_from=valid_from or dt.date.min,
        valid_until=valid_until,
        parties=parties,
        flows=flows,
        datasets=datasets,
        legal_basis_text=_optional_text(data, "legal_basis_text", p),
        renewal=terms.renewal(valid_until),
        onward_chain=dict(chain),
        contractors=contractors,
        scope=terms.scope(flows, datasets),
        retention=terms.retention(),
        report=terms.report(),
        corrections=terms.corrections(),
        witness_keys=terms.witness_keys(),
        obligations=(),
        clauses={},
        notes=_optional_text(data, "notes", p),
    )
    agreement = dataclasses.replace(agreement, clauses=parse_clauses(data, agreement, p))
    obligations = parse_obligations(data, agreement, p)
    p.raise_if_any()
    return dataclasses.replace(agreement, obligations=obligations)


# --- private helpers -----------------------------------------------------------------------------


def _text(data: Mapping[str, Any], key: str, p: Problems, where: str = "") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        p.fail(
            f"{where}{key}",
            R_("missing or not a non-empty string"),
            R_('set {key} = "…"', key=key),
        )
        return ""
    return value


def _optional_text(data: Mapping[str, Any], key: str, p: Problems, where: str = "") -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        p.fail(f"{where}{key}", R_("not a string"), R_('write {key} = "…"', key=key))
        return ""
    return value


def _date(data: Mapping[str, Any], key: str, p: Problems) -> dt.date | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    p.fail(key, R_("not a date"), R_("write it as a TOML date, e.g. {key} = 2023-03-29", key=key))
    return None


def _parties(raw: Any, p: Problems) -> dict[str, Party]:
    if not isinstance(raw, dict) or not raw:
        p.fail("parties", R_("missing"), R_("add a [parties.ID] table for each party"))
        return {}
    out: dict[str, Party] = {}
    for pid, body in raw.items():
        where = f"parties.{pid}."
        if not ID_PATTERN.fullmatch(pid):
            p.fail(
                f"parties.{pid}",
                R_("not a valid id"),
                R_("use lowercase letters, digits and hyphens, e.g. [parties.nhi-central]"),
            )
        if not isinstance(body, dict):
            p.fail(f"parties.{pid}", R_("not a table"), R_("write [parties.{pid}]", pid=pid))
            continue
        for key in body:
            if key not in _PARTY_KEYS:
                p.fail(
                    f"{where}{key}", R_("unknown key"), R_("use some of: {choices}",
                                                       choices=', '.join(sorted(_PARTY_KEYS)))
                )
        kind = body.get("kind")
        if not known(kind, PARTY_KINDS):
            p.fail(
                f"{where}kind",
                R_("unknown party kind"),
                R_("use one of: {choices}", choices=', '.join(sorted(PARTY_KINDS))),
            )
        designates = body.get("designates", [])
        if not isinstance(designates, list) or any(not known(r, ROLES) for r in designates):
            p.fail(
                f"{where}designates",
                R_("not a list of handler roles"),
                R_("use some of: {choices}", choices=', '.join(sorted(ROLES))),
            )
            designates = []
        signatory = _optional_text(body, "signatory", p, where) or None
        out[pid] = Party(
            id=pid,
            name=_text(body, "name", p, where),
            kind=str(kind),
            signatory=signatory,
            designates=frozenset(designates),
        )
    return out


def _flows(
    raw: Any,
    parties: Mapping[str, Party],
    datasets: Mapping[str, Dataset],
    chain: Mapping[str, tuple[str, ...]],
    p: Problems,
) -> tuple[Flow, ...]:
    if not isinstance(raw, list) or not raw:
        p.fail("flows", R_("missing"), R_("add at least one [[flows]] table"))
        return ()
    out: list[Flow] = []
    for i, body in enumerate(raw):
        if not isinstance(body, dict):
            p.fail(f"flows[{i}]", R_("not a table"), R_("write [[flows]]"))
            continue
        out.append(_flow(body, f"flows[{i}].", parties, datasets, chain, p))
    ids = [f.id for f in out]
    for i, fid in enumerate(ids):
        if fid in ids[:i]:
            p.fail(f"flows[{i}].id", R_("duplicate flow id"), R_("give each flow its own id"))
    _check_replies(out, p)
    return tuple(out)


def _flow(
    body: Mapping[str, Any],
    where: str,
    parties: Mapping[str, Party],
    datasets: Mapping[str, Dataset],
    chain: Mapping[str, tuple[str, ...]],
    p: Problems,
) -> Flow:
    for key in body:
        if key not in _FLOW_KEYS:
            p.fail(f"{where}{key}", R_("unknown key"), R_("use some of: {choices}",
                                                      choices=', '.join(sorted(_FLOW_KEYS))))
    fid = _text(body, "id", p, where)
    if fid and not ID_PATTERN.fullmatch(fid):
        p.fail(
            f"{where}id",
            R_("not a valid id"),
            R_('use lowercase letters, digits and hyphens, e.g. id = "monthly"'),
        )
    provider = _text(body, "from", p, where)
    recipient = _text(body, "to", p, where)
    for key, party in (("from", provider), ("to", recipient)):
        if party and not known(party, parties):
            p.fail(
                f"{where}{key}",
                R_("names no party of this agreement"),
                R_("add [parties.{party}] or correct the id", party=party),
            )
    if provider and provider == recipient:
        p.fail(
            f"{where}to",
            R_("the same party as from"),
            R_("a flow goes from one party to another"),
        )
    dataset = _text(body, "dataset", p, where)
    if dataset and not known(dataset, datasets):
        p.fail(f"{where}dataset", R_("names no dataset"), R_("add [datasets.{dataset}]",
                                                         dataset=dataset))
    witnesses = body.get("witnesses", 1)
    if not isinstance(witnesses, int) or isinstance(witnesses, bool) or witnesses < 1:
        # 複数人が立ち合いのもと送信: without a witness, one person would send alone.
        p.fail(
            f"{where}witnesses",
            R_("must be an integer of at least 1"),
            R_("set witnesses = 1 (or more)"),
        )
        witnesses = 1
    encryption = body.get("encryption", "zip-aes256")
    if not known(encryption, ENCRYPTION_PROFILES):
        p.fail(
            f"{where}encryption",
            R_("unknown encryption profile"),
            R_("use one of: {choices}", choices=', '.join(sorted(ENCRYPTION_PROFILES))),
        )
    elif (
        encryption.startswith("xlsx-")
        and dataset in datasets
        and datasets[dataset].format != "xlsx"
    ):
        p.fail(
            f"{where}encryption",
            R_("a workbook password needs an xlsx dataset"),
            R_('use encryption = "zip-aes256" or format = "xlsx"'),
        )
    kind = body.get("kind", "provision")
    if not known(kind, FLOW_KINDS):
        p.fail(f"{where}kind", R_("unknown flow kind"), R_("use one of: {choices}",
                                                       choices=', '.join(FLOW_KINDS)))
    basis = body.get("legal_basis")
    if basis is not None and not known(basis, LEGAL_BASES):
        p.fail(
            f"{where}legal_basis",
            R_("unknown legal basis"),
            R_("use one of: {choices}, or remove it to use the agreement's",
               choices=', '.join(LEGAL_BASES)),
        )
    medium = body.get("medium", "exchange-server")
    if not known(medium, MEDIA):
        p.fail(f"{where}medium", R_("unknown medium"), R_("use one of: {choices}",
                                                      choices=', '.join(MEDIA)))
    reply_to = body.get("reply_to")
    if reply_to is not None and not isinstance(reply_to, str):
        p.fail(f"{where}reply_to", R_("not a flow id"), R_('write reply_to = "provision"'))
        reply_to = None
    if kind == "answer" and reply_to is None:
        p.fail(
            f"{where}reply_to",
            R_("an answer must name the flow it answers"),
            R_('write reply_to = "inquiry"'),
        )
    onward = _onward_of(body, where, recipient, chain, p)
    schedule = parse_schedule(body.get("schedule"), f"{where}schedule", p)
    return Flow(
        fid,
        provider,
        recipient,
        dataset,
        witnesses,
        str(encryption),
        onward,
        kind=str(kind),
        reply_to=reply_to,
        schedule=schedule,
        legal_basis=basis,
        medium=str(medium),
        title=_optional_text(body, "title", p, where),
    )


def _onward_of(
    body: Mapping[str, Any],
    where: str,
    recipient: str,
    chain: Mapping[str, tuple[str, ...]],
    p: Problems,
) -> tuple[str, ...]:
    declared = chain.get(recipient, ())
    onward = body.get("onward")
    if onward is None:
        return declared
    if not isinstance(onward, list) or not all(isinstance(x, str) for x in onward):
        p.fail(f"{where}onward", R_("not a list of party ids"), R_('write onward = ["…"]'))
        return declared
    if tuple(onward) != declared:
        # One statement of who may pass the data on: [onward.chain]; a flow may only repeat it.
        p.fail(
            f"{where}onward",
            R_("disagrees with [onward.chain] for {recipient}", recipient=recipient),
            R_("remove it, or make it equal onward.chain.{recipient} ({parties})",
               recipient=recipient, parties=", ".join(declared) or R_("nobody")),
        )
    return declared


def _check_replies(flows: list[Flow], p: Problems) -> None:
    by_id = {f.id: f for f in flows}
    for i, flow in enumerate(flows):
        if flow.reply_to is None:
            continue
        original = by_id.get(flow.reply_to)
        if original is None or original is flow:
            p.fail(
                f"flows[{i}].reply_to",
                R_("names no other flow of this agreement"),
                R_("name the flow this one replies to"),
            )
        elif (original.recipient, original.provider) != (flow.provider, flow.recipient):
            # 疑義照会 goes back to whoever provided; the 回答 goes back to whoever asked.
            p.fail(
                f"flows[{i}].reply_to",
                R_("flow {id} goes from {provider} to {recipient}, so a reply to it goes the "
                   "other way",
                   id=original.id, provider=original.provider, recipient=original.recipient),
                R_('set from = "{recipient}" and to = "{provider}"',
                   recipient=original.recipient, provider=original.provider),
            )
