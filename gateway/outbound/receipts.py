"""Reading delivery receipts (受領確認): delivered ─▶ acknowledged, on the recipient's signed word.

For each recipient with `receipts_dir` and `receipt_key`, the receipts in that folder are read:
one signed by the configured key, for a transfer of ours that is `delivered`, naming the sealed
file's SHA-256 and size that were delivered, moves the transfer to `acknowledged`
(`transfer.acknowledged`, the signed note kept in the ledger) and the file into `accepted/`.
Any other receipt (another key, another file, another transfer, a replay) is refused with
`transfer.receipt_refused` and kept in `refused/`. A receipt for a transfer this gateway does
not know is left alone: a shared inbox serves other providers too. It never sends anything.
"""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import timedelta
from pathlib import Path

from gateway.config.settings import Recipient
from gateway.errors import NotFound, StateError, TachiaiError
from gateway.exchange.receipts import (
    MAX_RECEIPT_BYTES,
    RULE_MALFORMED,
    RULE_PARTY,
    RULE_STATE,
    DeliveryReceipt,
    ReceiptRefused,
    check,
    read,
    transfer_of,
)
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime, event
from gateway.state import clock
from gateway.state.spool import open_regular, refuse_linked, sync_dir, write_atomic
from gateway.state.store import Transfer

log = logging.getLogger(__name__)

ACCEPTED = "accepted"
REFUSED = "refused"


def poll(rt: Runtime) -> int:
    """One pass over every recipient's receipts folder; returns the transfers acknowledged.

    Never raises: a folder that cannot be read is logged and read again at the next pass.
    """
    done = 0
    for recipient in rt.settings.recipients.values():
        if recipient.receipts_dir is None or recipient.receipt_key is None:
            continue
        try:
            done += _poll_folder(rt, recipient, recipient.receipts_dir)
        except (TachiaiError, OSError) as exc:
            log.error("receipts of %s in %s: %s", recipient.party, recipient.receipts_dir, exc)
    return done


def unacknowledged(rt: Runtime, older_than: timedelta | None = None) -> list[Transfer]:
    """Delivered transfers still without a receipt after `older_than` (by default each
    recipient's `receipt_within_hours`), oldest first; only recipients that send receipts."""
    now = clock.now_ns()
    late = []
    for t in rt.store.in_states([State.DELIVERED]):
        recipient = rt.settings.recipients.get(t.recipient)
        if recipient is None or recipient.receipt_key is None:
            continue
        wait = older_than if older_than is not None else timedelta(
            hours=recipient.receipt_within_hours)
        if now - t.updated_ns >= wait.total_seconds() * 1e9:
            late.append(t)
    return late


def _poll_folder(rt: Runtime, recipient: Recipient, folder: Path) -> int:
    """Raises: StorageError, OSError (the folder cannot be listed)."""
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return 0
    refuse_linked(folder, f"the receipts folder of {recipient.party}")
    done = 0
    for name in names:
        tid = transfer_of(name)
        if tid is None:
            continue  # temporary names, accepted/ and refused/, anything else
        try:
            t = rt.store.get(tid)
        except NotFound:
            continue  # another provider's transfer, delivered to the same inbox
        done += _take(rt, recipient, folder / name, t)
    return done


def _take(rt: Runtime, recipient: Recipient, path: Path, t: Transfer) -> int:
    try:
        with open_regular(path) as fh:
            raw = fh.read(MAX_RECEIPT_BYTES + 1)
    except FileNotFoundError:
        return 0
    except (OSError, TachiaiError) as exc:
        raw = b""
        log.warning("receipt %s cannot be read as a plain file: %s", path, exc)
    digest = hashlib.sha256(raw).hexdigest()
    assert recipient.receipt_key is not None
    try:
        if not raw or len(raw) > MAX_RECEIPT_BYTES:
            raise ReceiptRefused(RULE_MALFORMED, "the receipt is empty, too large or not a file")
        if t.recipient != recipient.party:
            raise ReceiptRefused(RULE_PARTY, f"transfer {t.id} went to {t.recipient}, but its "
                                 f"receipt came from {recipient.party}'s folder")
        receipt = read(raw.decode("utf-8", "replace"), recipient.receipt_key)
        check(receipt, named=t.id, transfer=t.id, provider=rt.settings.party,
              recipient=recipient.party, sealed_sha256=t.sealed_sha256,
              sealed_size=t.sealed_size)
        if t.status is State.SEALED:
            return 0  # being delivered right now: the state catches up, then it is read
        if t.status is State.ACKNOWLEDGED and _accepted_copy(path) == raw:
            path.unlink()  # the move into accepted/ was interrupted: finish it
            return 0
        if t.status is not State.DELIVERED:
            raise ReceiptRefused(RULE_STATE, f"transfer {t.id} is {t.state}, not delivered: "
                                 "a receipt for it now is a replay")
    except ReceiptRefused as exc:
        _refuse(rt, t, path, raw, digest, exc)
        return 0
    return _accept(rt, t, path, raw, digest, receipt)


def _accept(rt: Runtime, t: Transfer, path: Path, raw: bytes, digest: str,
            receipt: DeliveryReceipt) -> int:
    kept = path.parent / ACCEPTED / path.name
    kept.parent.mkdir(exist_ok=True)
    write_atomic(kept, raw, 0o644)  # first the copy: a crash before the unlink is finished above
    try:
        # updated_ns stays the time of delivery: the schedule sweep dates deliveries by it.
        after = rt.store.transition(t, State.ACKNOWLEDGED, [event("transfer.acknowledged", t, {
            "receipt_sha256": digest, "holding": receipt.holding, "received": receipt.received,
            "sealed_sha256": receipt.sealed_sha256, "receipt": raw.decode("utf-8"),
        })], updated_ns=t.updated_ns)
    except StateError:
        return 0  # moved on meanwhile (another process): read again at the next pass
    path.unlink(missing_ok=True)
    sync_dir(path.parent)
    rt.flush()
    log.info("transfer %s is %s: %s signed its receipt", after.id, after.state, t.recipient)
    return 1


def _refuse(rt: Runtime, t: Transfer, path: Path, raw: bytes, digest: str,
            exc: ReceiptRefused) -> None:
    now = clock.now_ns()
    refused = path.parent / REFUSED
    refused.mkdir(exist_ok=True)
    os.rename(path, refused / f"{path.name}.{now}")
    sync_dir(path.parent)
    rt.store.record([event("transfer.receipt_refused", t, {
        "rule": exc.rule, "message": str(exc), "file": path.name, "receipt_sha256": digest,
        "size": len(raw)}, key=f"{t.id}:transfer.receipt_refused:{now}", time_ns=now)])
    rt.flush()
    log.warning("a receipt for transfer %s was refused (%s): %s; kept in %s", t.id, exc.rule,
                exc, refused)


def _accepted_copy(path: Path) -> bytes | None:
    try:
        return (path.parent / ACCEPTED / path.name).read_bytes()
    except OSError:
        return None
