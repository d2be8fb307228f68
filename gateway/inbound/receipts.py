"""Issuing delivery receipts (受領確認): the receiving half's word that a delivery was taken in.

Right after a holding is registered, a receipt naming the provider's transfer id, the sealed
file's SHA-256 and size, the parties and the time is signed with this gateway's checkpoint key
and written into the receipts folder beside the inbox (`[inbound] receipts_dir`), where the
provider's gateway reads it. Issuing never fails an intake: a receipt that cannot be written is
logged, and the provider sees the delivery as unacknowledged. It never reads a receipt back.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from gateway.errors import TachiaiError
from gateway.evidence.checkpointing import CheckpointSettings
from gateway.evidence.signing_key import load_or_create_key
from gateway.exchange.receipts import DeliveryReceipt, file_name
from gateway.inbound import holdings
from gateway.inbound.holdings import Holding
from gateway.runtime import Runtime
from gateway.state import clock
from gateway.state.spool import refuse_linked, write_atomic

log = logging.getLogger(__name__)

RECEIPT_MODE = 0o644  # ids and hashes only: the provider's gateway, another user, reads it


def issue(rt: Runtime, h: Holding) -> Path | None:
    """Sign and write the receipt of a received holding; recorded as `holding.receipt_issued`.

    Never raises: a failure is logged (the provider then lists the delivery as unacknowledged).
    """
    folder = rt.settings.inbound.receipts_dir
    if folder is None or h.transfer is None:
        return None
    try:
        return _write(rt, h, folder)
    except (TachiaiError, OSError) as exc:
        log.error("holding %s: the receipt for transfer %s could not be written to %s: %s",
                  h.id, h.transfer, folder, exc)
        return None


def _write(rt: Runtime, h: Holding, folder: Path) -> Path:
    """Raises: KeyFileError, StorageError, ReceiptRefused, OSError."""
    now = clock.now_ns()
    receipt = DeliveryReceipt(
        transfer=h.transfer or "",
        agreement=h.agreement or "",
        flow=h.flow or "",
        provider=h.provider or "",
        recipient=h.recipient or rt.settings.party,
        sealed_sha256=h.sealed_sha256 or "",
        sealed_size=h.sealed_size if h.sealed_size is not None else -1,
        holding=h.id,
        received=clock.iso(now),
    )
    keys = CheckpointSettings.from_settings(rt.settings)
    note = receipt.sign(load_or_create_key(keys.key_path, keys.key_name)).encode("utf-8")
    folder.mkdir(parents=True, exist_ok=True)
    refuse_linked(folder, "the receipts folder")
    path = folder / file_name(receipt.transfer)
    write_atomic(path, note, RECEIPT_MODE)
    digest = hashlib.sha256(note).hexdigest()
    rt.store.record([holdings.event("holding.receipt_issued", h, {
        "path": str(path), "receipt_sha256": digest, "sealed_sha256": receipt.sealed_sha256,
        "signer": keys.key_name}, time_ns=now)])
    rt.flush()
    log.info("holding %s: receipt for transfer %s written to %s", h.id, receipt.transfer, path)
    return path
