"""Designations (取扱者の指定) checked against the agreements that define them.

A handler designated under an agreement must belong to one of its parties and hold only roles
that party can exercise there (errors); each flow this gateway sends on needs a designated
sender and enough witnesses, and each party must designate what the agreement says (warnings:
a designation may simply start later). Pure: values in, problems out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from policies.agreement import Agreement
from policies.errors import FileProblem
from policies.handlers import Registry
from policies.onward import reachable_parties
from policies.wording import R_

__all__ = ["check_designations"]


def check_designations(
    agreements: Mapping[str, Agreement],
    registry: Registry,
    source: str,
    on: dt.date,
    party: str | None = None,
) -> tuple[list[FileProblem], list[str]]:
    """(errors, warnings) about the registry at `source` under the loaded agreements.

    `party` is the party this gateway acts for: coverage warnings are limited to its flows and
    designations (the other side designates its own people on its own gateway).
    """
    errors: list[FileProblem] = []
    warnings: list[str] = []
    for handler in registry.handlers:
        for agreement_id in sorted(handler.agreements):
            agreement = agreements.get(agreement_id)
            if agreement is None:
                warnings.append(R_(
                    "{source}: handler {name} is designated under {agreement}, which this "
                    "gateway does not load", source=source, name=handler.name,
                    agreement=agreement_id))
                continue
            problem = _role_problem(agreement, handler.party, handler.roles)
            if problem is not None:
                errors.append(
                    FileProblem(
                        source, f"handlers.{handler.name}.{problem[0]}", problem[1], problem[2]
                    )
                )
    for agreement in agreements.values():
        warnings.extend(_coverage(agreement, registry, on, party))
    return errors, warnings


def _role_problem(
    agreement: Agreement, party: str, roles: frozenset[str]
) -> tuple[str, str, str] | None:
    if party not in agreement.parties:
        return (
            "party",
            R_("party {party} is not a party of {id}", party=party, id=agreement.id),
            R_("use one of: {choices}, or remove {id} from the handler's agreements",
               choices=', '.join(sorted(agreement.parties)), id=agreement.id),
        )
    providers = {f.provider for f in agreement.flows}
    receivers = {f.recipient for f in agreement.flows}
    for flow in agreement.flows:
        receivers.update(reachable_parties(agreement, flow.recipient))
    if {"send", "witness"} & roles and party not in providers:
        return (
            "roles",
            R_("party {party} provides on no flow of {id}, so it has nothing to send or witness",
               party=party, id=agreement.id),
            R_("remove send and witness from the roles"),
        )
    if "receive" in roles and party not in receivers:
        return (
            "roles",
            R_("party {party} receives on no flow of {id}", party=party, id=agreement.id),
            R_("remove receive from the roles"),
        )
    return None


def _coverage(
    agreement: Agreement, registry: Registry, on: dt.date, party: str | None
) -> list[str]:
    if not agreement.in_force(on):
        return []
    out: list[str] = []

    def designated(of: str, role: str) -> int:
        return sum(
            1 for h in registry.handlers if h.party == of and h.designated(agreement.id, role, on)
        )

    for flow in agreement.flows:
        if party is not None and flow.provider != party:
            continue
        if designated(flow.provider, "send") == 0:
            out.append(
                R_("{id}/flows.{id2}: no designated sender of {provider} on {on}; files dropped "
                   "there will be rejected",
                   id=agreement.id, id2=flow.id, provider=flow.provider, on=on)
            )
        if designated(flow.provider, "witness") < flow.witnesses:
            out.append(
                R_("{id}/flows.{id2}: needs {witnesses} witness(es) of {provider} besides the "
                   "sender, the registry designates {designated} on {on}; no transfer can be "
                   "approved",
                   id=agreement.id, id2=flow.id, witnesses=flow.witnesses, provider=flow.provider,
                   designated=designated(flow.provider, 'witness'), on=on)
            )
    for pid, body in agreement.parties.items():
        if party is not None and pid != party:
            continue
        for role in sorted(body.designates):
            if designated(pid, role) == 0:
                out.append(
                    R_("{id}/parties.{pid}: the agreement requires designated handlers "
                       "(取扱者の指定) for {role}; none on {on}",
                       id=agreement.id, pid=pid, role=role, on=on)
                )
    return out
