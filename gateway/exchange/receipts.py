"""Delivery receipts (受領確認): the note a receiving gateway signs for each delivery it took in.

Shared by both halves: the receiving side makes and signs a receipt, the sending side reads and
checks one. A receipt is a C2SP signed note (`audit.notes`) signed with the receiving
gateway's checkpoint key; its text is a header line and one line of canonical JSON naming the
transfer, the sealed file's SHA-256 and size, the parties and the time. It never reads or
writes a file and never touches the database.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from audit.notes import NoteError, NoteSigner, NoteVerifier, open_note
from gateway.errors import CheckFailed

HEADER = "tachiai delivery receipt v1"
SUFFIX = ".receipt"
MAX_RECEIPT_BYTES = 1 << 14
# A transfer id names the receipt's file: no path separator, no leading dot, no control.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

RULE_SIGNATURE = "receipt.signature"
RULE_MALFORMED = "receipt.malformed"
RULE_TRANSFER = "receipt.transfer"
RULE_PARTY = "receipt.party"
RULE_HASH = "receipt.hash"
RULE_STATE = "receipt.state"


class ReceiptRefused(CheckFailed):
    """A receipt that is not the signed word of the recipient about this very delivery."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(
            message,
            hint="the receipt is kept in the refused/ folder beside it; ask the recipient, by "
            "another channel, whether they received the file",
        )
        self.rule = rule


@dataclass(frozen=True)
class DeliveryReceipt:
    """What the receiving gateway states it took in (ids, hashes and times only)."""

    transfer: str
    agreement: str
    flow: str
    provider: str
    recipient: str
    sealed_sha256: str
    sealed_size: int
    holding: str
    received: str  # ISO 8601

    def text(self) -> str:
        """The signed text: the header line, then the fields as canonical JSON on one line."""
        return f"{HEADER}\n{canonical(asdict(self))}\n"

    def sign(self, signer: NoteSigner) -> str:
        """The signed note of this receipt.

        Raises:
            ReceiptRefused: a field a receipt cannot carry (e.g. a transfer id unfit for a name).
        """
        _check_fields(self)
        try:
            return signer.sign(self.text())
        except NoteError as exc:
            raise ReceiptRefused(RULE_MALFORMED, f"the receipt cannot be signed: {exc}") from exc


def canonical(fields: dict[str, Any]) -> str:
    """Sorted keys, no spaces, ASCII only: one byte string for one receipt."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def file_name(transfer_id: str) -> str:
    """The name a receipt is written under, fixed by the transfer id (a repeat overwrites)."""
    return f"{transfer_id}{SUFFIX}"


def transfer_of(name: str) -> str | None:
    """The transfer id a receipt's file name claims, or None for any other name."""
    if not name.endswith(SUFFIX):
        return None
    tid = name[: -len(SUFFIX)]
    return tid if _ID.match(tid) else None


def read(note: str, verifier: NoteVerifier) -> DeliveryReceipt:
    """The receipt in `note`, if the recipient's key signed it and its text is canonical.

    Raises:
        ReceiptRefused: not signed by `verifier` (receipt.signature) or malformed.
    """
    try:
        text = open_note(note, verifier)
    except NoteError as exc:
        raise ReceiptRefused(RULE_SIGNATURE, f"the receipt is not signed by the recipient's "
                             f"configured receipt_key: {exc}") from exc
    header, _, body = text.partition("\n")
    try:
        fields = json.loads(body)
        receipt = DeliveryReceipt(**fields)
    except (ValueError, TypeError) as exc:
        raise ReceiptRefused(RULE_MALFORMED, "the receipt's fields are not a receipt") from exc
    if header != HEADER or receipt.text() != text:
        raise ReceiptRefused(RULE_MALFORMED, "the receipt is not in the canonical form")
    _check_fields(receipt)
    return receipt


def check(
    receipt: DeliveryReceipt,
    *,
    named: str,
    transfer: str,
    provider: str,
    recipient: str,
    sealed_sha256: str | None,
    sealed_size: int | None,
) -> None:
    """Whether `receipt`, found under the name of transfer `named`, speaks of this delivery.

    Raises:
        ReceiptRefused: another transfer (receipt.transfer), other parties (receipt.party),
            or other bytes (receipt.hash) than the ones delivered.
    """
    if receipt.transfer != named or receipt.transfer != transfer:
        raise ReceiptRefused(RULE_TRANSFER, f"the receipt is for transfer {receipt.transfer}, "
                             f"but was found as the receipt of {named}")
    if (receipt.provider, receipt.recipient) != (provider, recipient):
        raise ReceiptRefused(RULE_PARTY, f"the receipt names {receipt.provider} → "
                             f"{receipt.recipient}, not {provider} → {recipient}")
    if (receipt.sealed_sha256, receipt.sealed_size) != (sealed_sha256, sealed_size):
        raise ReceiptRefused(RULE_HASH, "the receipt names another sealed file (SHA-256 or "
                             "size) than the one delivered")


def _check_fields(r: DeliveryReceipt) -> None:
    texts = (r.agreement, r.flow, r.provider, r.recipient, r.holding, r.received)
    if (
        not _ID.match(r.transfer)
        or not _SHA256.match(r.sealed_sha256)
        or isinstance(r.sealed_size, bool)
        or not isinstance(r.sealed_size, int)
        or r.sealed_size < 0
        or not all(isinstance(t, str) and t for t in texts)
    ):
        raise ReceiptRefused(RULE_MALFORMED, "the receipt's fields are not a receipt")
