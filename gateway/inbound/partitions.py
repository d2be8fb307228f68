"""Partitions (区画) of a gateway that holds several members' data (seed 004: 市町村ごとに論理的に
区分された区画, 区画ごとにアクセス制御).

A gateway names the members it also holds for in `[gateway] partitions`; each delivery to one of
them becomes a holding of that member (`Holding.recipient`), opened and certified only by that
member's designated receiving handlers (`gateway.inbound.signers`). This module answers which
parties this gateway holds for; it never reads a holding's data.
"""

from __future__ import annotations

from gateway.errors import UsageError
from gateway.i18n import N_
from gateway.runtime import Runtime

__all__ = ["held_for", "require_member"]


def held_for(rt: Runtime) -> tuple[str, ...]:
    """Every party whose data this gateway holds: its own, then each partition's member."""
    return (rt.settings.party, *rt.settings.partitions)


def require_member(rt: Runtime, party: str) -> str:
    """`party`, when this gateway holds data for it.

    Raises:
        UsageError: naming the parties it does hold for, and where they are configured.
    """
    if party not in held_for(rt):
        raise UsageError(
            N_("{party} is not a party whose data this gateway holds; it holds for: {parties}")
            .format(party=party, parties=", ".join(held_for(rt))),
            hint=N_("a member is held for here when [gateway] partitions names it"),
        )
    return party
