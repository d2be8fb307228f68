"""Forwarding a holding to a party group: one child transfer per member (振り分け).

Seed 000 記1(3): 国保中央会 passes the monthly file on 国保連合会経由で市町村へ, and seed 004 keeps
each municipality's data in its own 区画. `forward` splits a held file by 地方公共団体コード
(`policies.splitting`), byte for byte, and makes one outbound transfer per member with rows, each
then checked like any file and witnessed by one statement that lists every child
(`gateway.outbound.approvals`). It sits between the halves: it reads a holding (inbound) and
starts transfers (outbound); it never decides which member a row belongs to itself, and it never
writes a row to the ledger: hashes, counts and member ids only.

A forward killed mid-way is finished or undone, never repeated: an intent file names the fan-out
before its first child exists, and `recover` (run by the next `holdings forward` of the holding
and by the daemon, at start and with each sweep) either checks the children of a recorded
fan-out that were left before their check, or rejects every child of an unrecorded one
(`fanout.interrupted`) and removes its staged parts, so no second set of children and no partial
fan-out is ever approved.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway import faults, processes
from gateway.errors import CheckFailed, StateError, UsageError
from gateway.exchange.fanout import prefecture_of
from gateway.i18n import N_
from gateway.inbound import holdings
from gateway.inbound.holdings import HELD
from gateway.outbound import pipeline
from gateway.outbound.intake import Outbox
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime, event
from gateway.state import claims, clock, fanouts
from gateway.state.fanouts import Child, Fanout
from gateway.state.spool import write_atomic
from gateway.state.store import Transfer
from policies.reasons import Reason
from policies.splitting import split_file

__all__ = ["INTENT", "FanoutResult", "forward", "new_fanout_id", "parts_of", "recover"]

log = logging.getLogger(__name__)

FanoutResult = tuple[Fanout, Sequence[Transfer]]

#: The file in a fan-out's staging folder naming it before its first child exists.
INTENT = "intent.json"
#: An intent written on another node is taken for abandoned after this long (its process cannot
#: be asked whether it lives); on this node, a dead process's intent is recovered at once.
FOREIGN_INTENT_SECONDS = 3600


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
        raise StateError(N_("holding {id} is {state}; only held data can be forwarded")
                         .format(id=h.id, state=h.state),
                         hint=N_("see `tachiai holdings show ID`"))
    if h.agreement is None or h.agreement not in rt.agreements:
        raise UsageError(N_("holding {id} is under no agreement loaded here").format(id=h.id))
    agreement = rt.agreements[h.agreement]
    try:
        flow = agreement.flow(flow_id)
    except KeyError:
        raise UsageError(N_("agreement {agreement} has no flow {flow!r}")
                         .format(agreement=agreement.id, flow=flow_id),
                         hint=N_("see `tachiai agreements show {agreement}`")
                         .format(agreement=agreement.id)) from None
    party = rt.settings.party
    if flow.recipient not in agreement.groups:
        raise UsageError(N_("flow {flow} goes to {recipient}, which is not a party group; "
                            "drop the file into its outbox instead")
                         .format(flow=flow.id, recipient=flow.recipient),
                         hint=N_("a groups file beside the agreement declares the groups"))
    if not agreement.acts_as(party, flow.provider) or h.recipient != party:
        raise UsageError(N_("flow {flow} runs from {provider}; this gateway is {party} "
                            "and cannot forward on it")
                         .format(flow=flow.id, provider=flow.provider, party=party))
    # An earlier forward of this holding that was killed mid-way is finished or undone first.
    for fanout_id, outcome in recover(rt, h.id):
        done_before = fanouts.get(rt.store, fanout_id)
        if outcome == "completed" and done_before is not None and done_before.flow == flow.id:
            log.warning("holding %s: the interrupted fan-out %s on %s was completed", h.id,
                        fanout_id, flow.id)
            return done_before, [rt.store.get(c.transfer) for c in done_before.children]
    # A fan-out whose every child was rejected is over: the holding may be forwarded anew.
    if any(f.flow == flow.id and any(rt.store.get(c.transfer).status is not State.REJECTED
                                     for c in f.children)
           for f in fanouts.by_holding(rt.store, h.id)):
        raise StateError(N_("holding {id} was forwarded on flow {flow} already")
                         .format(id=h.id, flow=flow.id),
                         hint=N_("see `tachiai holdings show ID`; reject its children to "
                                 "start again"))
    with holdings.plaintext(rt, h) as fh:
        data = fh.read()
    split = split_file(data, agreement, agreement.dataset_of(flow), flow.recipient, column,
                      clock.today(), prefecture_of=prefecture_of)
    if split.refused or not split.parts:
        reasons = list(split.reasons) or [agreement.reason(
            "split.nothing", "no row of the file belongs to a member of "
            f"{flow.recipient}; nothing was sent", "groups")]
        _refused(rt, h, flow.id, column, reasons, split.withheld)
        raise CheckFailed(f"holding {h.id} was not forwarded: " + "; ".join(
            f"{r.rule}: {r.message}" for r in reasons), hint=N_("nothing was sent"))
    fanout_id = new_fanout_id()
    staging = rt.settings.state_dir / "fanouts" / fanout_id
    staging.mkdir(parents=True, exist_ok=True, mode=0o700)
    stem, dot, ext = (h.file_name or "data.csv").rpartition(".")
    children: list[tuple[Child, Transfer]] = []
    # Each child is created claimed by this command, so a running daemon leaves it alone until
    # it is checked here (a claim of a process that died is taken back by the daemon).
    owner = claims.owner_id(rt.settings.node_name or None, "forward")
    # Named before the first child exists: a crash from here on is finished or undone by
    # `recover`, never left as children of no fan-out.
    write_atomic(staging / INTENT, json.dumps({
        "fanout": fanout_id, "holding": h.id, "flow": flow.id, "split_by": column,
        "owner": owner}).encode("utf-8"))
    faults.crash_point("fanout-after-intent")
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
            raise StateError(N_("the part for {member} vanished before it was taken in")
                             .format(member=part.member.party))
        children.append((Child(t.id, part.member.party, part.rows, part.sha256, part.size), t))
        faults.crash_point("fanout-after-child")
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
    faults.crash_point("fanout-after-record")
    # Each child is checked like any file (sender, content, onward, its member's rows only),
    # and waits for the one witnessed decision over the whole fan-out.
    done = []
    for _c, t in children:
        done.append(pipeline.advance(rt, t, owner=owner,
                                     states=(State.DROPPED, State.QUARANTINED)))
        faults.crash_point("fanout-after-check")
    (staging / INTENT).unlink()
    _tidy(staging)
    log.info("holding %s forwarded on %s: %d children, %d rows withheld", h.id, flow.id,
             len(done), split.withheld_total)
    return fanout, done


def recover(rt: Runtime, holding_id: str | None = None) -> list[tuple[str, str]]:
    """Finish or undo every forward (of `holding_id`, or of any holding) whose process died
    mid-way; return (fan-out id, "completed" or "rolled back") for each.

    A recorded fan-out is completed: its children left before their check are checked now. An
    unrecorded one is rolled back: each child it made is rejected (`fanout.interrupted`) and its
    staged parts are removed, so the holding can be forwarded again. Each is recorded on the
    holding (`fanout.resumed`, `fanout.rolled_back`).

    Raises:
        StateError: a forward of this holding is still running in another process.
        StorageError: the state database or the staging folder cannot be written.
    """
    out: list[tuple[str, str]] = []
    base = rt.settings.state_dir / "fanouts"
    for path in sorted(base.glob(f"*/{INTENT}")):
        try:
            intent = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.error("fan-out intent %s cannot be read; left for an administrator", path)
            continue
        if holding_id is not None and intent.get("holding") != holding_id:
            continue
        if _running(str(intent.get("owner", "")), path,
                    rt.settings.node_name or socket.gethostname()):
            if holding_id is None:
                continue
            raise StateError(N_("a forward of holding {id} is under way in another process "
                                "({owner})").format(id=holding_id, owner=intent.get("owner")),
                             hint=N_("wait for it to finish, then see `tachiai holdings show ID`"))
        fanout_id = str(intent.get("fanout", path.parent.name))
        found = fanouts.get(rt.store, fanout_id)
        if found is not None:
            _complete(rt, found, intent)
            out.append((fanout_id, "completed"))
        else:
            _roll_back(rt, path.parent, intent)
            out.append((fanout_id, "rolled back"))
        path.unlink()
        _tidy(path.parent)
    return out


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


def _complete(rt: Runtime, fanout: Fanout, intent: dict[str, Any]) -> None:
    """Check each child of a recorded fan-out that its dead forward left before the check."""
    owner = claims.owner_id(rt.settings.node_name or None, "forward")
    stuck = [t for t in (rt.store.get(c.transfer) for c in fanout.children)
             if t.status in (State.DROPPED, State.QUARANTINED)]
    dead = str(intent.get("owner", ""))
    if any(t.claimed_by == dead for t in stuck):
        rt.store.release_owners([dead])  # the claims of the process that died, only
    done = [pipeline.advance(rt, rt.store.get(t.id), owner=owner,
                             states=(State.DROPPED, State.QUARANTINED)) for t in stuck]
    rt.store.record([holdings.event("fanout.resumed", holdings.get(rt, fanout.holding), {
        "fanout": fanout.id, "flow": fanout.flow,
        "checked": [{"transfer": t.id, "state": t.state} for t in done],
    }, key=f"{fanout.holding}:fanout.resumed:{fanout.id}")])
    rt.flush()
    log.warning("fan-out %s completed after an interruption: %d child(ren) checked", fanout.id,
                len(done))


def _roll_back(rt: Runtime, staging: Path, intent: dict[str, Any]) -> None:
    """Reject every child an unrecorded fan-out made; remove the parts not yet taken in."""
    prefix = str(staging) + os.sep
    reason = Reason(
        "fanout.interrupted",
        "the forward that made this part was interrupted before its fan-out was recorded; the "
        "part was rolled back and is never sent: run `tachiai holdings forward` again",
    )
    orphans = [t for t in rt.store.in_states([State.DROPPED, State.QUARANTINED])
               if t.source_path.startswith(prefix)]
    dead = str(intent.get("owner", ""))
    if any(t.claimed_by == dead for t in orphans):
        rt.store.release_owners([dead])  # the claims of the process that died, only
    rejected = []
    for t in orphans:
        t = rt.store.get(t.id)
        dicts = [reason.as_dict()]
        rt.store.transition(t, State.REJECTED, [event("transfer.rejected", t, {
            "reasons": dicts, "stage": t.state})],
            reasons=json.dumps(dicts, ensure_ascii=False))
        rejected.append(t.id)
    # Parts written but never taken in are plaintext rows: removed, never left behind.
    removed = 0
    for part in sorted(staging.glob("*/*")):
        with contextlib.suppress(FileNotFoundError):
            if part.is_file() and not part.is_symlink():
                part.unlink()
                removed += 1
            elif part.is_dir() and not part.is_symlink():
                shutil.rmtree(part)
    holding = str(intent.get("holding", ""))
    if holding:
        rt.store.record([holdings.event("fanout.rolled_back", holdings.get(rt, holding), {
            "fanout": str(intent.get("fanout", staging.name)), "flow": intent.get("flow"),
            "rejected": rejected, "staged_parts_removed": removed,
        }, key=f"{holding}:fanout.rolled_back:{staging.name}")])
    rt.flush()
    log.warning("fan-out %s was interrupted before it was recorded: rolled back (%d child(ren) "
                "rejected, %d staged part(s) removed)", staging.name, len(rejected), removed)


def _running(owner: str, intent: Path, here: str) -> bool:
    """Whether the forward that wrote an intent (as `owner`) may still be running; `here` is
    this node's name."""
    node, pid, _worker = claims.split_owner(owner)
    if pid is None:
        return False
    if pid == os.getpid():
        return False  # our own, left by an earlier call in this process (tests)
    if node != here:
        try:
            return time.time() - intent.stat().st_mtime < FOREIGN_INTENT_SECONDS
        except FileNotFoundError:
            return False
    return processes.alive(pid)


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
