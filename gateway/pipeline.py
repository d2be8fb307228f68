"""The outbound pipeline: each step takes a transfer from one state to the next.

take_in: outbox entry → dropped → (rename into spool) → quarantined | rejected
check:   quarantined → awaiting_approval | rejected          (policies decide, with reasons)
seal:    approved → sealed | rejected (file changed after approval: approvals void)
deliver: sealed → delivered (or retried, then failed)
Every step is idempotent and starts from what the database and the spool hold, so `advance`
after a crash (kill -9 anywhere) finishes the work without losing or repeating a delivery.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
from pathlib import Path
from typing import Any

from gateway import clock, faults
from gateway.delivery import deliver_local, delivered_name
from gateway.errors import PartnerUnavailable, StateError
from gateway.intake import Outbox
from gateway.lifecycle import State
from gateway.runtime import Runtime, event, new_transfer_id
from gateway.sealing import new_password, seal_zip
from gateway.spool import copy_private, inspect, open_regular, write_atomic
from gateway.store import Transfer
from policies.admission import check_period, find_sender
from policies.content import check_csv
from policies.reasons import Reason

log = logging.getLogger(__name__)

MAX_DELIVERY_ATTEMPTS = 5
WORK_STATES = (State.DROPPED, State.QUARANTINED, State.APPROVED, State.SEALED)


def take_in(rt: Runtime, outbox: Outbox, path: Path) -> Transfer | None:
    """Record an intake intent, move the entry into the spool, and quarantine it."""
    try:
        entry = inspect(path)
    except FileNotFoundError:
        return None
    _agreement, flow = rt.agreement_flow(outbox.agreement, outbox.flow)
    now = clock.now_ns()
    transfer = Transfer(
        id=new_transfer_id(), agreement=outbox.agreement, flow=outbox.flow,
        recipient=flow.recipient, state=State.DROPPED.value, file_name=_printable(path.name),
        source_path=str(path), created_ns=now, updated_ns=now,
    )
    rt.store.create(transfer, [event("transfer.dropped", transfer, {
        "file_name": transfer.file_name, "kind": entry.kind,
    }, time_ns=now)])
    faults.crash_point("after-intent")
    return advance(rt, transfer)


def advance(rt: Runtime, transfer: Transfer) -> Transfer:
    """Take every step the transfer is ready for; stop where it must wait."""
    steps = {
        State.DROPPED: _quarantine,
        State.QUARANTINED: _check,
        State.APPROVED: _seal,
        State.SEALED: _deliver,
    }
    while (step := steps.get(transfer.status)) is not None:
        try:
            nxt = step(rt, transfer)
        except StateError:
            log.info("transfer %s was moved on by another process", transfer.id)
            return rt.store.get(transfer.id)
        finally:
            rt.flush()
        if nxt.state == transfer.state:
            return nxt
        transfer = nxt
    if transfer.status is State.DELIVERED:
        _erase_password(rt, transfer)
    return transfer


def due(t: Transfer, now_ns: int) -> bool:
    """Whether a transfer's next attempt is due: delivery retries back off exponentially."""
    if t.status is not State.SEALED or t.attempts == 0:
        return True
    backoff_ns: int = min(2**t.attempts, 300) * 1_000_000_000
    return now_ns >= t.updated_ns + backoff_ns


def recover(rt: Runtime) -> int:
    """After a start or crash: flush events, finish every unfinished step."""
    rt.flush()
    count = 0
    for transfer in rt.store.in_states(WORK_STATES):
        advance(rt, transfer)
        count += 1
    for transfer in rt.store.in_states([State.DELIVERED]):
        _erase_password(rt, transfer)
    return count


def _quarantine(rt: Runtime, t: Transfer) -> Transfer:
    dropped = rt.spool.dropped(t.id)
    if not os.path.lexists(dropped):
        source = Path(t.source_path)
        if not os.path.lexists(source):
            return _reject(rt, t, [Reason("intake.vanished", "the dropped file disappeared "
                                          "before it could be taken in; drop it again")])
        rt.spool.take(source, t.id)
    faults.crash_point("after-spool-move")
    # Who dropped it is read from the entry now in our spool, not from the outbox entry seen
    # before the rename (which another writer of the outbox could have swapped meanwhile).
    entry = inspect(dropped)
    owner = _user_name(entry.uid)
    reasons = _intake_reasons(rt, t, entry.kind, entry.links, entry.size)
    if reasons:
        return _reject(rt, t, reasons, size=entry.size, owner=owner)
    size, digest = copy_private(dropped, rt.spool.payload(t.id))
    after = rt.store.transition(t, State.QUARANTINED, [event("transfer.quarantined", t, {
        "size": size, "sha256": digest, "owner": owner})], size=size, sha256=digest, owner=owner)
    dropped.unlink()  # its bytes are in the private copy, recorded with their hash
    return after


def _intake_reasons(rt: Runtime, t: Transfer, kind: str, links: int, size: int) -> list[Reason]:
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
    if t.file_name != Path(t.source_path).name:
        return [Reason("intake.file-name", "the file name has control characters or is not "
                       "valid UTF-8; rename it")]
    return []


def _check(rt: Runtime, t: Transfer) -> Transfer:
    rt.spool.dropped(t.id).unlink(missing_ok=True)  # left over if we crashed after copying
    agreement, flow = rt.agreement_flow(t.agreement, t.flow)
    today = clock.today()
    reasons: list[Reason] = []
    sender = find_sender(rt.registry, agreement, flow, t.owner, today)
    if isinstance(sender, Reason):
        reasons.append(sender)
    period = check_period(agreement, today)
    if period is not None:
        reasons.append(period)
    with open_regular(rt.spool.payload(t.id)) as fh:
        verdict = check_csv(fh, agreement.dataset_of(flow),
                            f"{agreement.id}/datasets.{flow.dataset}")
    reasons.extend(verdict.reasons)
    if reasons:
        return _reject(rt, t, reasons, sender=None if isinstance(sender, Reason) else sender.name)
    assert not isinstance(sender, Reason)
    return rt.store.transition(t, State.AWAITING_APPROVAL, [event("transfer.checked", t, {
        "sender": sender.name, "rows": verdict.facts.get("rows"),
        "encoding": verdict.facts.get("encoding"), "witnesses_required": flow.witnesses,
        "sha256": t.sha256,
    }, actor=sender.name)], sender=sender.name, rows=verdict.facts.get("rows"),
        encoding=verdict.facts.get("encoding"))


def _seal(rt: Runtime, t: Transfer) -> Transfer:
    _agreement, flow = rt.agreement_flow(t.agreement, t.flow)
    folder = rt.spool.folder(t.id)
    password = new_password()
    write_atomic(folder / "password", password.encode("ascii"))
    sealed = seal_zip(rt.spool.payload(t.id), t.file_name, folder / "sealed.zip", password,
                      rt.settings.compression)
    faults.crash_point("after-seal-write")
    if sealed.plain_sha256 != t.sha256 or sealed.plain_size != t.size:
        (folder / "sealed.zip").unlink(missing_ok=True)
        (folder / "password").unlink(missing_ok=True)
        return _reject(rt, t, [Reason(
            "approval.void", "the file changed after it was approved, so every approval is void;"
            " drop the file again and have it approved anew", f"{t.agreement}/flows.{t.flow}"
            ".witnesses")])
    return rt.store.transition(t, State.SEALED, [event("transfer.sealed", t, {
        "profile": flow.encryption, "sealed_sha256": sealed.sealed_sha256,
        "sealed_size": sealed.sealed_size, "compression": rt.settings.compression,
    })], sealed_sha256=sealed.sealed_sha256, sealed_size=sealed.sealed_size)


def _deliver(rt: Runtime, t: Transfer) -> Transfer:
    recipient = rt.settings.recipient(t.recipient)
    folder = rt.spool.folder(t.id)
    password = (folder / "password").read_text(encoding="ascii").strip()
    try:
        done = deliver_local(recipient, folder / "sealed.zip",
                             delivered_name(t.id, t.file_name), password)
    except PartnerUnavailable as exc:
        attempts = t.attempts + 1
        target = State.FAILED if attempts >= MAX_DELIVERY_ATTEMPTS else State.SEALED
        log.warning("delivery of %s failed (attempt %d): %s", t.id, attempts, exc)
        if target is State.FAILED:
            return rt.store.transition(t, State.FAILED, [event("transfer.failed", t, {
                "attempts": attempts, "error": str(exc)})], attempts=attempts)
        return rt.store.update(t, [event("delivery.retry", t, {
            "attempt": attempts, "error": str(exc)}, key=f"{t.id}:delivery.retry:{attempts}")],
            attempts=attempts)
    faults.crash_point("after-deliver")
    password_path = str(done.password_path) if done.password_path else None
    return rt.store.transition(t, State.DELIVERED, [
        event("password.issued", t, {"channel": "folder", "path": password_path}),
        event("transfer.delivered", t, {"path": str(done.path),
                                        "sealed_sha256": t.sealed_sha256}),
    ], delivered_path=str(done.path), password_path=password_path)


def _reject(rt: Runtime, t: Transfer, reasons: list[Reason], **changes: Any) -> Transfer:
    dicts = [r.as_dict() for r in reasons]
    log.info("transfer %s rejected: %s", t.id, ", ".join(r.rule for r in reasons))
    return rt.store.transition(t, State.REJECTED, [event("transfer.rejected", t, {
        "reasons": dicts, "stage": t.state})], reasons=json.dumps(dicts, ensure_ascii=False),
        **changes)


def _erase_password(rt: Runtime, t: Transfer) -> None:
    (rt.spool.folder(t.id) / "password").unlink(missing_ok=True)


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _printable(name: str) -> str:
    """The name as text we can show and sign; undecodable bytes and controls are escaped."""
    if name.isprintable():
        try:
            name.encode("utf-8")
            return name
        except UnicodeEncodeError:
            pass
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") \
        .encode("unicode_escape").decode("ascii")
