"""The outbound pipeline: each step takes a transfer from one state to the next.

take_in: outbox entry → dropped → (rename into spool) → quarantined | rejected
check:   quarantined → awaiting_approval | rejected          (policies decide, with reasons)
seal:    approved → sealed | rejected (file changed after approval: approvals void)
deliver: sealed → delivered (or retried, then failed)
Every step is idempotent and starts from what the database and the spool hold, so `advance`
after a crash (kill -9 anywhere) finishes the work without losing or repeating a delivery.

The delivery step and the password's erasure are `delivery_step`; a rejection, the end every
step shares, is `rejection`. Taking in, checking and sealing stay here with the loop that runs
the steps and hands claims on (over 400 lines: they share its claim hand-off and the intake's
helpers).
"""

from __future__ import annotations

import json
import logging
import os
import pwd
from collections.abc import Callable, Collection, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol

from gateway import faults, progress
from gateway.errors import (
    ConfigError,
    StateError,
)
from gateway.exchange.fanout import member_refusal
from gateway.exchange.onward_guard import inspect_onward
from gateway.i18n import N_
from gateway.outbound import (
    approvals,
    check_pool,
    delivery_step,
    names,
    pickup,
    reapproval,
    replies,
)
from gateway.outbound.delivery_step import deliver, erase_password
from gateway.outbound.intake import Outbox
from gateway.outbound.lifecycle import State
from gateway.outbound.rejection import reject
from gateway.outbound.sealing import (
    PASSWORD_PROFILES,
    PROFILES,
    SealRefused,
    age_recipients,
    new_password,
    password_document,
    seal_age,
    seal_workbook_zip,
    seal_zip,
    sealed_path,
)
from gateway.runtime import Runtime, event, new_transfer_id
from gateway.state import claims, clock, fanouts
from gateway.state.spool import copy_private, inspect, open_regular, write_atomic
from gateway.state.store import Transfer
from policies.admission import applied_terms, check_period, find_named_sender, find_sender
from policies.file_names import check_name
from policies.reasons import Reason

log = logging.getLogger(__name__)

WORK_STATES = (State.DROPPED, State.QUARANTINED, State.APPROVED, State.SEALED)
KIND = delivery_step.KIND  # what a worker claims (gateway.state.claims)
#: The claims `advance` hands on in this thread (see its `hand_claims`): state → next owner.
_HAND_CLAIMS: ContextVar[Mapping[State, str] | None] = ContextVar("hand_claims", default=None)
# How long a claim lasts without a heartbeat is `[gateway] lease_seconds`; a worker renews it
# while a step runs (see gateway.workers), so only a dead worker's claim expires and is taken
# over.


def take_in(rt: Runtime, outbox: Outbox, path: Path, *, owner: str | None = None,
            states: Collection[State] = WORK_STATES, provider: str | None = None,
            recipient: str | None = None) -> Transfer | None:
    """Record an intake intent, move the entry into the spool, and quarantine it.

    With an `owner` (a worker), the transfer is created already claimed by it, so no other
    worker moves the entry meanwhile; `states` limits the steps taken here (see `advance`).
    The name is checked before anything is recorded (policies.file_names): `transfer.dropped`
    carries only its keyed hash (`name_hmac`), and the checked name first appears in
    `transfer.quarantined`. A refused name is stored nowhere: the transfer records the outbox and
    the hash, finds the entry by it, and is rejected with the name's reasons, the file kept.
    `provider` and `recipient` name the members of party groups a fan-out's child runs between
    (gateway.forwarding); they default to the flow's own parties.
    """
    try:
        entry = inspect(path)
    except FileNotFoundError:
        return None
    _agreement, flow = rt.agreement_flow(outbox.agreement, outbox.flow)
    raw = os.fsencode(path.name)
    digest = names.name_hmac(_name_key(rt), raw)
    verdict = check_name(raw)
    now = clock.now_ns()
    transfer = Transfer(
        id=new_transfer_id(), agreement=outbox.agreement, flow=outbox.flow,
        provider=provider or flow.provider, recipient=recipient or flow.recipient,
        state=State.DROPPED.value,
        file_name=verdict.name or "",
        source_path=str(path) if verdict.accepted else names.withheld_source(outbox.path, digest),
        # A refused name's reasons are kept from here: once the entry is in the spool, its name
        # is gone and cannot be checked again.
        reasons=json.dumps([r.as_dict() for r in verdict.reasons], ensure_ascii=False),
        created_ns=now, updated_ns=now,
        claimed_by=owner,
        lease_until_ns=None if owner is None
        else claims.now_ns() + int(rt.settings.lease_seconds * 1e9),
    )
    # Claimed for the intake's transaction: another worker or node that saw the same entry
    # records nothing (it would find the entry gone and reject it as vanished).
    if not rt.store.create_intake(transfer, [event("transfer.dropped", transfer, {
        "name_hmac": digest, "kind": entry.kind,
    }, time_ns=now)], still_there=lambda: os.path.lexists(path)):
        log.debug("an outbox entry was taken in by another worker")
        return None
    faults.crash_point("after-intent")
    return advance(rt, transfer, owner=owner, states=states)


def advance(rt: Runtime, transfer: Transfer, *, owner: str | None = None,
            states: Collection[State] = WORK_STATES,
            flush: Callable[[], object] | None = None,
            hand_claims: Mapping[State, str] | None = None) -> Transfer:
    """Take every step in `states` the transfer is ready for; stop where it must wait.

    With an `owner` (a worker), each step is claimed first and taken only if the claim is
    granted; a step's transition ends the claim, and a step that moves nothing (a delivery to be
    retried) or raises gives it back. Without one (a command, a test) steps run unclaimed.
    `flush` moves the steps' events into the ledger (default `rt.flush`, at once; the daemon's
    workers ask their flusher thread, which moves the events of several steps in one flush).
    `hand_claims` (a worker): a move into one of its states (out of `states`) commits, with
    the move, the claim of the owner named there, the worker that takes the next step, which
    then starts without a claim of its own (sealed → the partner's delivery worker).
    """
    # The ledger is written once, after the steps (however the last one ended), and only when
    # a step ran and the transfer does not go straight on to another lane's step (sealed → the
    # partner's delivery lane, whose flush then moves both steps' events). Each step's events
    # are committed with its state change (the outbox in the state database), so a crash
    # before a flush loses none: the next flush, at the latest `recover` at start, moves them.
    # A flush costs two durable commits (the ledger, then the state database's record).
    stepped: list[bool] = []
    result: Transfer | None = None
    handing = _HAND_CLAIMS.set(hand_claims)
    try:
        result = _steps(rt, transfer, owner, states, stepped)
        return result
    finally:
        _HAND_CLAIMS.reset(handing)
        handed_on = (result is not None and result.status in WORK_STATES
                     and result.status not in states)
        if stepped and not handed_on:
            (rt.flush if flush is None else flush)()


def _steps(rt: Runtime, transfer: Transfer, owner: str | None, states: Collection[State],
           stepped: list[bool]) -> Transfer:
    """The steps of `advance`; appends to `stepped` before each step it takes."""
    steps = {
        State.DROPPED: _quarantine,
        State.QUARANTINED: _check,
        State.APPROVED: _seal,
        State.SEALED: deliver,
    }
    while transfer.status in states and (step := steps.get(transfer.status)) is not None:
        # Held already when the intake created it claimed, or the last step kept its claim
        # for this one: claiming again would be a durable commit for nothing.
        if owner is not None and transfer.claimed_by != owner:
            lease = rt.settings.lease_seconds
            if not rt.store.claim(KIND, transfer.id, transfer.state, owner, lease):
                log.debug("transfer %s is claimed by another worker", transfer.id)
                return transfer
            transfer = transfer.model_copy(update={"claimed_by": owner})
        moved = False
        stepped.append(True)
        try:
            name = step.__name__.lstrip("_")
            faults.fail_point(name, transfer.file_name)
            with progress.step(rt.settings.state_dir, transfer.id, name, owner):
                nxt = step(rt, transfer)
            moved = nxt.state != transfer.state
        except StateError:
            log.info("transfer %s was moved on by another process", transfer.id)
            return rt.store.get(transfer.id)
        finally:
            if owner is not None and not moved:
                rt.store.release(KIND, transfer.id, owner)
        if not moved:
            return nxt
        transfer = nxt
    if transfer.status is State.DELIVERED:
        erase_password(rt, transfer, owner=owner)
    return transfer


class Due(Protocol):
    """What `due` reads of a transfer (a whole row, or the dispatcher's `Candidate`)."""

    @property
    def status(self) -> State: ...
    @property
    def attempts(self) -> int: ...
    @property
    def updated_ns(self) -> int: ...


def due(t: Due, now_ns: int) -> bool:
    """Whether a transfer's next attempt is due: delivery retries back off exponentially."""
    if t.status is not State.SEALED or t.attempts == 0:
        return True
    backoff_ns: int = min(2**t.attempts, 300) * 1_000_000_000
    return now_ns >= t.updated_ns + backoff_ns


def recover(rt: Runtime, *, owner: str | None = None,
            states: Collection[State] = WORK_STATES) -> int:
    """After a start or crash: flush events, finish every unfinished step in `states` (none,
    when workers will), erase passwords left after delivery; return how many are unfinished."""
    rt.flush()
    unfinished = rt.store.in_states(WORK_STATES)
    for transfer in unfinished:
        if transfer.status in states:
            advance(rt, transfer, owner=owner, states=states)
    for transfer in rt.store.in_states([State.DELIVERED]):
        erase_password(rt, transfer, owner=owner)
    return len(unfinished)


def _quarantine(rt: Runtime, t: Transfer) -> Transfer:
    dropped = rt.spool.dropped(t.id)
    if not os.path.lexists(dropped):
        source = _source(rt, t)
        if source is None or not os.path.lexists(source):
            return reject(rt, t, [Reason("intake.vanished", "the dropped file disappeared "
                                          "before it could be taken in; drop it again")])
        rt.spool.take(source, t.id)
    faults.crash_point("after-spool-move")
    named = {"file_name": t.file_name} if t.file_name else {}
    refused_name = [Reason.from_dict(r) for r in t.reason_list()]
    if refused_name:  # kept in the spool as `dropped`, never read, never deleted
        return reject(rt, t, refused_name)
    # Who dropped it is read from the entry now in our spool, not from the outbox entry seen
    # before the rename (which another writer of the outbox could have swapped meanwhile).
    entry = inspect(dropped)
    owner = _user_name(entry.uid)
    reasons = _intake_reasons(rt, entry.kind, entry.links, entry.size)
    if reasons:
        return reject(rt, t, reasons, size=entry.size, owner=owner, named=named)
    size, digest = copy_private(dropped, rt.spool.payload(t.id))
    # The check follows at once on the intake lane: its claim is kept through it.
    after = rt.store.transition(t, State.QUARANTINED, [event("transfer.quarantined", t, {
        "size": size, "sha256": digest, "owner": owner, **named})], size=size, sha256=digest,
        owner=owner, keep_claim=True)
    dropped.unlink()  # its bytes are in the private copy, recorded with their hash
    return after


def _source(rt: Runtime, t: Transfer) -> Path | None:
    """The outbox entry a transfer was dropped as (found by its keyed hash if withheld)."""
    if names.withheld_hmac(t.source_path) is None:
        return Path(t.source_path)
    return names.find_withheld(_name_key(rt), t.source_path)


def _name_key(rt: Runtime) -> bytes:
    """Raises: ConfigError, StorageError (see `names.load_or_create_key`)."""
    return names.load_or_create_key(names.key_path(rt.settings.state_dir))


def _intake_reasons(rt: Runtime, kind: str, links: int, size: int) -> list[Reason]:
    limit = rt.settings.max_file_size
    if kind != "file":
        return [Reason(f"intake.{kind}", f"a {kind} was dropped; only plain files are taken in. "
                       "Copy the file itself into the outbox")]
    if links != 1:
        return [Reason("intake.hardlink", "the file has other hard links; copy the file itself "
                       "into the outbox instead of linking it")]
    if size > limit:
        return [Reason("intake.too-large", f"the file is {size} bytes, over the limit of {limit}; "
                       "split it or ask the administrator to raise intake.max_file_size")]
    return []


def _check(rt: Runtime, t: Transfer) -> Transfer:
    rt.spool.dropped(t.id).unlink(missing_ok=True)  # left over if we crashed after copying
    agreement, group_flow = rt.agreement_flow(t.agreement, t.flow)
    flow = agreement.flow_for(group_flow, t.provider, t.recipient)
    child = None
    if group_flow.recipient in agreement.groups and t.recipient != group_flow.recipient:
        # A fan-out's child (gateway.forwarding) is checked once its fan-out is recorded, a
        # moment after it was taken in: until then it waits.
        found = fanouts.of_transfer(rt.store, t.id)
        if found is None:
            return t
        child = next(c for c in found.children if c.transfer == t.id)
    today = clock.today()
    reasons: list[Reason] = []
    # A file pulled by an SFTP pickup belongs to the daemon's user: the configuration names
    # the designated sender it is attributed to; a dropped file, its owner.
    pulled_by = pickup.designated_sender(rt.settings, Path(t.source_path))
    sender = (find_named_sender(rt.registry, agreement, flow, pulled_by, today) if pulled_by
              else find_sender(rt.registry, agreement, flow, t.owner, today))
    if isinstance(sender, Reason):
        reasons.append(sender)
    period = check_period(agreement, today)
    if period is not None:
        reasons.append(period)
    # After a crash mid-split, the file as dropped is `original`: check that again, never the
    # partial result, so the split is derived the same way twice.
    original = rt.spool.original(t.id)
    source = original if original.exists() else rt.spool.payload(t.id)
    verdict = check_pool.check(rt, source, agreement, flow, today)  # in the daemon's processes
    reasons.extend(verdict.reasons)
    if reasons:
        return reject(rt, t, reasons, sender=None if isinstance(sender, Reason) else sender.name)
    assert not isinstance(sender, Reason)
    facts = verdict.facts
    changes: dict[str, Any] = {}
    if facts.get("keep") is not None:
        # 委任状 scope, outside = "split": only covered rows go; the witnesses approve the split
        # file, and the file as dropped stays in the spool (never deleted silently).
        size, digest = rt.spool.split(t.id, facts["keep"])
        changes = {"size": size, "sha256": digest}
    # 再提供の禁止: rows this gateway received under another agreement may go on only where
    # that agreement allows. Judged on exactly the bytes the witnesses will approve.
    receiver = agreement.parties.get(flow.recipient)
    with open_regular(rt.spool.payload(t.id)) as fh:
        onward = inspect_onward(rt, fh, agreement.dataset_of(flow).format, flow.recipient,
                                to_contractor=receiver is not None
                                and receiver.kind == "contractor")
    if onward.reasons:
        return reject(rt, t, list(onward.reasons), sender=sender.name, **changes)
    if group_flow.recipient in agreement.groups:
        # A flow to a party group (国保連合会, 市町村): one member per file, its own rows only.
        with open_regular(rt.spool.payload(t.id)) as fh:
            stray = member_refusal(agreement, flow, group_flow.recipient, t.recipient, fh, today)
        if stray is not None:
            return reject(rt, t, [stray], sender=sender.name, **changes)
        if child is not None and (child.sha256, child.size) != (t.sha256, t.size):
            return reject(rt, t, [agreement.reason(
                "fanout.changed", "the file is not the part the fan-out made for "
                f"{t.recipient} (its SHA-256 differs): it was changed after the split; forward "
                "the holding again", f"flows.{t.flow}.to")], sender=sender.name, **changes)
    # 疑義照会・回答: a reply is linked while it awaits approval, and approved only once linked;
    # said now, so the sender links it before a witness is asked (nothing is linked yet).
    notices = list(verdict.notices)
    unlinked = replies.unlinked_reply(rt, t)
    if unlinked is not None:
        notices.append(replies.link_first(unlinked, t.id))
    data = {
        "sender": sender.name, "pulled_by": pulled_by, "rows": facts.get("rows"),
        "format": facts.get("format"),
        "encoding": facts.get("encoding"), "witnesses_required": flow.witnesses,
        "sha256": changes.get("sha256", t.sha256), "size": changes.get("size", t.size),
        "notices": [n.as_dict() for n in notices],
        "applied": sorted({*verdict.applied, *applied_terms(agreement, flow)}),
    }
    for key in ("withheld", "provided"):
        if key in facts:
            data[key] = facts[key]
    if changes:
        data["dropped_sha256"] = t.sha256
    if onward.matched:
        data["onward_matched"] = dict(onward.matched)  # provenance: counts per agreement only
    return rt.store.transition(t, State.AWAITING_APPROVAL, [event(
        "transfer.checked", t, data, actor=sender.name)], sender=sender.name,
        rows=facts.get("provided", facts.get("rows")), encoding=facts.get("encoding"), **changes)


def _seal(rt: Runtime, t: Transfer) -> Transfer:
    agreement, flow = rt.agreement_flow(t.agreement, t.flow)
    flow = agreement.flow_for(flow, t.provider, t.recipient)
    folder = rt.spool.folder(t.id)
    profile = flow.encryption
    out = sealed_path(folder, profile)
    payload = rt.spool.payload(t.id)
    data: dict[str, Any] = {"profile": profile}
    try:
        if profile == "age":
            # No password at all: the file opens only with a receiving handler's own key.
            keys = age_recipients(rt.registry, agreement.id, flow.recipient, clock.today())
            sealed = seal_age(payload, out, [key for _name, key in keys])
            data["age_recipients"] = [name for name, _key in keys]
        elif profile in PASSWORD_PROFILES:
            rt.settings.recipient(t.recipient).require_password_route()  # before any work
            zip_password = new_password()
            book_password = new_password() if profile != "zip-aes256" else None
            write_atomic(folder / "password", password_document(zip_password, book_password))
            if book_password is None:
                sealed = seal_zip(payload, t.file_name, out, zip_password,
                                  rt.settings.compression, rt.settings.compression_level)
            else:
                sealed = seal_workbook_zip(payload, t.file_name, out, zip_password, book_password,
                                           rt.settings.compression, rt.settings.compression_level)
            data["compression"] = rt.settings.compression
            if rt.settings.compression == "deflate":
                data["compression_level"] = rt.settings.compression_level
        else:
            raise ConfigError(N_("agreement {agreement} flow {flow}: encryption {profile} is not "
                                 "supported (supported: {profiles})").format(
                                  agreement=t.agreement, flow=t.flow, profile=repr(profile),
                                  profiles=', '.join(PROFILES)))
    except SealRefused as exc:
        return reject(rt, t, [Reason("seal.refused", f"{exc} ({exc.hint})",
                                      f"{t.agreement}/flows.{t.flow}.encryption")])
    faults.crash_point("after-seal-write")
    refusal = None
    if sealed.plain_sha256 != t.sha256 or sealed.plain_size != t.size:
        refusal = Reason(
            "approval.void", "the file changed after it was approved, so every approval is void;"
            " drop the file again and have it approved anew", f"{t.agreement}/flows.{t.flow}"
            ".witnesses")
    else:
        refusal = approvals.authorize(rt, t, sealed.plain_sha256, sealed.plain_size)
    if refusal is not None:
        out.unlink(missing_ok=True)
        (folder / "password").unlink(missing_ok=True)
        # The same bytes delivered after the approvals were given, and nothing else: back to
        # the witnesses with the new statement, not rejected (gateway.outbound.reapproval).
        found = (reapproval.appeared(rt, t, sealed.plain_sha256, sealed.plain_size)
                 if refusal.rule == "approval.missing" else None)
        if found is not None:
            return reapproval.return_to_witnesses(rt, t, found)
        return reject(rt, t, [refusal])
    return rt.store.transition(t, State.SEALED, [event("transfer.sealed", t, {
        **data, "sealed_sha256": sealed.sealed_sha256, "sealed_size": sealed.sealed_size,
    })], sealed_sha256=sealed.sealed_sha256, sealed_size=sealed.sealed_size,
        **_handed_claim(rt, t, State.SEALED))


def _handed_claim(rt: Runtime, t: Transfer, target: State) -> dict[str, Any]:
    """What a move of a claimed `t` into `target` writes to hand its claim to the next step's
    worker (`advance`'s `hand_claims`); nothing when there is none: the move ends the claim."""
    owner = (_HAND_CLAIMS.get() or {}).get(target)
    if owner is None or t.claimed_by is None:
        return {}
    return {"keep_claim": True, "claimed_by": owner,
            "lease_until_ns": claims.now_ns() + int(rt.settings.lease_seconds * 1e9)}


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None
