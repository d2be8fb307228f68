"""The `[[obligations]]` and `[clauses]` tables of an agreement file.

Obligations are the measures a party must take (提供先に求める措置, seed 003 (1)–(7); the
conditions of seeds 000/001 記1(3)); each one tachiai enforces must have the term that enforces
it. Clauses say where the signed text states each term, for citations. Pure: no file access.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.agreement import Agreement
from policies.errors import Problems, known
from policies.terms import OBLIGATIONS, Obligation
from policies.wording import R_

__all__ = ["TERM_HEADS", "parse_clauses", "parse_obligations"]

# The first segment of every term key a clause may cite (see Agreement.term).
TERM_HEADS = frozenset(
    {
        "purpose",
        "legal_basis",
        "valid_from..valid_until",
        "valid_until",
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
    }
)


def parse_obligations(
    data: Mapping[str, Any], agreement: Agreement, p: Problems
) -> tuple[Obligation, ...]:
    """[[obligations]], each tied to the term that enforces it."""
    raw = data.get("obligations", [])
    if not isinstance(raw, list):
        p.fail("obligations", R_("not a list"), R_("write one [[obligations]] table each"))
        return ()
    out: list[Obligation] = []
    for i, body in enumerate(raw):
        key = f"obligations[{i}]"
        if not isinstance(body, dict):
            p.fail(key, R_("not a table"), R_("write [[obligations]]"))
            continue
        for extra in set(body) - {"id", "party", "text"}:
            p.fail(f"{key}.{extra}", R_("unknown key"), R_("use id, party and text only"))
        oid, party = body.get("id"), body.get("party")
        if not known(oid, OBLIGATIONS):
            p.fail(f"{key}.id", R_("unknown obligation"), R_("use one of: {choices}",
                                                         choices=', '.join(OBLIGATIONS)))
            continue
        if not known(party, agreement.parties):
            p.fail(
                f"{key}.party",
                R_("names no party of this agreement"),
                R_("use one of: {choices}", choices=', '.join(sorted(agreement.parties))),
            )
            continue
        missing = _missing_term(str(oid), str(party), agreement)
        if missing is not None:
            p.fail(f"{key}.id", R_("{oid} has no term to enforce it: {missing}",
                                   oid=oid, missing=missing[0]), missing[1])
        text = body.get("text", OBLIGATIONS[str(oid)])
        if not isinstance(text, str) or not text.strip():
            p.fail(f"{key}.text", R_("not a non-empty string"), R_('write text = "…" or remove it'))
            text = OBLIGATIONS[str(oid)]
        out.append(Obligation(str(oid), str(party), text))
    return tuple(out)


def parse_clauses(data: Mapping[str, Any], agreement: Agreement, p: Problems) -> dict[str, str]:
    """[clauses]: where the signed text states each term, keyed by term key."""
    raw = data.get("clauses", {})
    if not isinstance(raw, dict):
        p.fail("clauses", R_("not a table"), R_('[clauses] then "scope" = "記 1(3)"'))
        return {}
    ids: dict[str, set[str]] = {
        "flows": {f.id for f in agreement.flows},
        "datasets": set(agreement.datasets),
        "parties": set(agreement.parties),
    }
    out: dict[str, str] = {}
    for key, text in raw.items():
        head, _, rest = key.partition(".")
        ok = key in TERM_HEADS or (
            head in TERM_HEADS and (head not in ids or rest.split(".")[0] in ids[head])
        )
        if not ok or not isinstance(text, str):
            p.fail(
                f"clauses.{key}",
                R_("cites no term of this agreement"),
                R_('key a clause by a term, e.g. "scope" or "flows.monthly.schedule"'),
            )
            continue
        out[key] = text
    return out


# --- private helpers -----------------------------------------------------------------------------


def _missing_term(oid: str, party: str, a: Agreement) -> tuple[str, str] | None:
    """What term an obligation lacks, as (problem, fix), or None when it is enforceable."""
    if oid == "report" and a.report is None:
        return R_("no [report] table"), R_('add [report] with every = "on-request" and to = "…"')
    if oid == "deletion-or-return" and a.retention is None:
        return R_("no [retention] table"), R_('add [retention] with then = "delete-or-return"')
    if oid == "corrections" and not a.corrections:
        return R_("corrections is not true"), R_("set corrections = true")
    if oid == "no-onward" and (a.onward_chain.get(party) or party in a.contractors):
        return (
            R_("the onward chain lets {party} pass the data on", party=party),
            R_("empty onward.chain.{party} and remove it from onward.contractors", party=party),
        )
    if oid == "handlers-limited" and not a.parties[party].designates:
        return (
            R_("party {party} designates no handlers", party=party),
            R_('set designates = ["receive"] (or the roles) in [parties.{party}]', party=party),
        )
    return None
