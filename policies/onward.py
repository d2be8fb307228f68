"""The onward provision ban (再提供の禁止): to whom a holder of the data may pass it on.

Seed 000 記1(3): 国保中央会 → 国保連合会 → 市町村, each also to its own contractors (委託事業者);
seed 001 記1(3): 厚生労働省 → 日本年金機構 (and whom it queries, and its contractors); seed 003
(3): the recipient passes it to nobody. Pure decisions on party ids; never sees the data.
"""

from __future__ import annotations

from policies.agreement import Agreement
from policies.reasons import Reason
from policies.wording import R_

__all__ = ["onward_refusal", "reachable_parties"]


def onward_refusal(
    agreement: Agreement,
    holder: str,
    to: str,
    *,
    provider: str | None = None,
    to_contractor: bool = False,
) -> Reason | None:
    """Why `holder` may not pass the data to `to`, or None when the agreement allows it.

    `provider` is the party the holder received the data from (the provider of the flow it came
    on): sending it back to that party (a 疑義照会 naming the rows it asks about) passes it to
    nobody new and is not onward provision. `to_contractor` says the receiver is a contractor
    (委託事業者) acting for the holder; that is allowed only where the agreement lets the holder
    use contractors, and is never a return. A party id the agreement does not know is refused
    (fail closed).
    """
    if holder not in agreement.parties:
        return agreement.reason(
            "onward.unknown-holder",
            R_("{holder} is not a party of this agreement and holds no data under it",
               holder=holder),
            "onward",
        )
    if provider is not None and to == provider and not to_contractor:
        return None  # back to where it came from: no new party holds it
    receiver = agreement.parties.get(to)
    if to_contractor or (receiver is not None and receiver.kind == "contractor"):
        if holder in agreement.contractors:
            return None
        return agreement.reason(
            "onward.contractor",
            R_("{holder} may not entrust the data to a contractor (委託事業者) under this "
               "agreement; keep the work in-house or amend the agreement", holder=holder),
            "onward.contractors",
        )
    if to in agreement.onward_chain.get(holder, ()):
        return None
    allowed = ", ".join(agreement.onward_chain.get(holder, ())) or R_("nobody")
    return agreement.reason(
        "onward.forbidden",
        R_("{holder} may pass this data on only to: {allowed}; providing it "
           "to {to} is forbidden (再提供の禁止)", holder=holder, allowed=allowed, to=to),
        f"onward.chain.{holder}",
    )


def reachable_parties(agreement: Agreement, start: str) -> tuple[str, ...]:
    """Every party the data may reach from `start` along the onward chain, in order found; a
    group stands for its members (each member is named only where the chain names it alone)."""
    seen: list[str] = []
    queue = [agreement.role_of(start)]
    while queue:
        holder = queue.pop(0)
        for nxt in agreement.onward_chain.get(holder, ()):
            if agreement.group_of(nxt) is not None:
                continue  # a member of a group that the chain names too
            if nxt not in seen and nxt != start:
                seen.append(nxt)
                queue.append(nxt)
    return tuple(seen)
