"""Forwarding a holding to a party group: one child transfer per member (振り分け).

Seed 000 記1(3): 国保中央会 passes the monthly file on 国保連合会経由で市町村へ, and seed 004 keeps
each municipality's data in its own 区画. `forward` splits a held file by 地方公共団体コード
(`policies.splitting`), byte for byte, and makes one outbound transfer per member with rows, each
then checked like any file and witnessed by one statement that lists every child
(`gateway.outbound.approvals`). It sits between the halves: it reads a holding (inbound) and
starts transfers (outbound); it never decides which member a row belongs to itself, and it never
writes a row to the ledger: hashes, counts and member ids only.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.errors import CheckFailed, StateError, UsageError
from gateway.exchange.fanout import prefecture_of
from gateway.inbound import holdings
from gateway.inbound.holdings import HELD
from gateway.outbound import pipeline
from gateway.outbound.intake import Outbox
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime
from gateway.state import claims, clock, fanouts
from gateway.state.fanouts import Child, Fanout
from gateway.state.spool import write_atomic
from gateway.state.store import Transfer
from policies.reasons import Reason
from policies.splitting import split_csv

__all__ = ["FanoutResult", "forward", "new_fanout_id", "parts_of"]

log = logging.getLogger(__name__)

FanoutResult = tuple[Fanout, Sequence[Transfer]]


def new_fanout_id() -> str:
    return "f-" + secrets.token_hex(6)


def forward(rt: Runtime, holding_id: str, flow_id: str, column: str) -> FanoutResult:
    """Split holding `holding_id` by the code in `column` among the members of the group flow
    `flow_id` goes to; one child transfer per member with rows, each taken in and checked.

    Raises:
        NotFound: no such holding.
        StateError: the holding is no longer held, or was forwarded on this flow already.
        UsageError: the flow is not this gateway's, or does not go to a party group.
        CheckFailed: the file cannot be split as the agreement says (recorded as
            `fanout.refused`, with the rule; nothing is sent).
    """
    h = holdings.get(rt, holding_id)
    if h.status not in HELD:
        raise StateError(f"holding {h.id} is {h.state}; only held data can be forwarded",
                         hint="see `tachiai holdings show ID`")
    if h.agreement is None or h.agreement not in rt.agreements:
        raise UsageError(f"holding {h.id} is under no agreement loaded here")
    agreement = rt.agreements[h.agreement]
    try:
        flow = agreement.flow(flow_id)
    except KeyError:
        raise UsageError(f"agreement {agreement.id} has no flow {flow_id!r}",
                         hint=f"see `tachiai agreements show {agreement.id}`") from None
    party = rt.settings.party
    if flow.recipient not in agreement.groups:
        raise UsageError(f"flow {flow.id} goes to {flow.recipient}, which is not a party group; "
                         "drop the file into its outbox instead",
                         hint="a groups file beside the agreement declares the groups")
    if not agreement.acts_as(party, flow.provider) or h.recipient != party:
        raise UsageError(f"flow {flow.id} runs from {flow.provider}; this gateway is {party} "
                         "and cannot forward on it")
    if any(f.flow == flow.id for f in fanouts.by_holding(rt.store, h.id)):
        raise StateError(f"holding {h.id} was forwarded on flow {flow.id} already",
                         hint="see `tachiai holdings show ID`; reject its children to start again")
    with holdings.plaintext(rt, h) as fh:
        data = fh.read()
    split = split_csv(data, agreement, agreement.dataset_of(flow), flow.recipient, column,
                      clock.today(), prefecture_of=prefecture_of)
    if split.refused or not split.parts:
        reasons = list(split.reasons) or [agreement.reason(
            "split.nothing", "no row of the file belongs to a member of "
            f"{flow.recipient}; nothing was sent", "groups")]
        _refused(rt, h, flow.id, column, reasons, split.withheld)
        raise CheckFailed(f"holding {h.id} was not forwarded: " + "; ".join(
            f"{r.rule}: {r.message}" for r in reasons), hint="nothing was sent")
    fanout_id = new_fanout_id()
    staging = rt.settings.state_dir / "fanouts" / fanout_id
    staging.mkdir(parents=True, exist_ok=True, mode=0o700)
    stem, dot, ext = (h.file_name or "data.csv").rpartition(".")
    children: list[tuple[Child, Transfer]] = []
    # Each child is created claimed by this command, so a running daemon leaves it alone until
    # it is checked here (a claim of a process that died is taken back by the daemon).
    owner = claims.owner_id(rt.settings.node_name or None, "forward")
    for part in split.parts:
        name = f"{stem or ext}-{part.member.code}.{ext if dot else 'csv'}"
        folder = staging / part.member.party
        folder.mkdir(mode=0o700, exist_ok=True)
        path = folder / name
        write_atomic(path, part.data)
        os.chmod(path, 0o600)
        t = pipeline.take_in(rt, Outbox(agreement.id, flow.id, folder), path, states=(),
                             owner=owner, provider=party, recipient=part.member.party)
        if t is None:
            raise StateError(f"the part for {part.member.party} vanished before it was taken in")
        children.append((Child(t.id, part.member.party, part.rows, part.sha256, part.size), t))
    fanout = Fanout(
        id=fanout_id, holding=h.id, agreement=agreement.id, flow=flow.id, group=flow.recipient,
        split_by=column, parent_sha256=h.sha256 or "", rows=split.rows,
        withheld=dict(split.withheld), created_by=None, created_ns=clock.now_ns(),
        children=tuple(c for c, _t in children),
    )
    with rt.store.transaction("record the fan-out") as conn:
        fanouts.record(conn, fanout)
        rt.store.record([holdings.event("fanout.created", h, {
            "fanout": fanout.id, "flow": flow.id, "group": flow.recipient, "split_by": column,
            "parent_sha256": fanout.parent_sha256, "rows": split.rows,
            "withheld": dict(split.withheld),
            "children": [{"transfer": c.transfer, "member": c.member, "rows": c.rows,
                          "sha256": c.sha256, "size": c.size} for c in fanout.children],
        }, key=f"{h.id}:fanout.created:{fanout.id}")], conn)
    rt.flush()
    # Each child is checked like any file (sender, content, onward, its member's rows only),
    # and waits for the one witnessed decision over the whole fan-out.
    done = [pipeline.advance(rt, t, owner=owner, states=(State.DROPPED, State.QUARANTINED))
            for _c, t in children]
    _tidy(staging)
    log.info("holding %s forwarded on %s: %d children, %d rows withheld", h.id, flow.id,
             len(done), split.withheld_total)
    return fanout, done


def parts_of(rt: Runtime, holding_id: str) -> list[dict[str, Any]]:
    """Every fan-out of a holding, each child with its member, rows, digest and state, and the
    members whose part is not delivered yet (for `tachiai holdings show`)."""
    out: list[dict[str, Any]] = []
    for f in fanouts.by_holding(rt.store, holding_id):
        children = [{"transfer": c.transfer, "member": c.member, "rows": c.rows,
                     "sha256": c.sha256, "state": rt.store.get(c.transfer).state}
                    for c in f.children]
        out.append({
            "id": f.id, "flow": f.flow, "group": f.group, "split_by": f.split_by,
            "rows": f.rows, "withheld": dict(f.withheld), "children": children,
            "undelivered": [c["member"] for c in children
                            if c["state"] not in ("delivered", "acknowledged")],
        })
    return out


def _refused(rt: Runtime, h: holdings.Holding, flow: str, column: str,
             reasons: list[Reason], withheld: object) -> None:
    now = clock.now_ns()
    rt.store.record([holdings.event("fanout.refused", h, {
        "flow": flow, "split_by": column, "reasons": [r.as_dict() for r in reasons],
        "withheld": withheld,
    }, key=f"{h.id}:fanout.refused:{now}", time_ns=now)])
    rt.flush()


def _tidy(staging: Path) -> None:
    """Remove the empty staging folders (each part was moved into the spool)."""
    for folder in sorted(staging.glob("*"), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            continue
    try:
        staging.rmdir()
    except OSError:
        return
