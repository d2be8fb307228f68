"""Inclusion proofs (RFC 9162 §2.1.3) an auditor checks offline, tied to a signed checkpoint.

A proof is a JSON file in RFC 9162 terms — `leaf_index`, `tree_size`, `leaf_hash`,
`inclusion_path`, `root_hash` (hex) — plus the event's exact bytes and the signed checkpoint
whose root it reaches. Checking it needs only the ledger's public key: no database, no gateway.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from audit.checkpoints import SignedCheckpoint, parse
from audit.errors import LedgerIntegrityError
from audit.events import Event, decode
from audit.merkle import subtree_ranges_for_inclusion, verify_inclusion
from audit.notes import NoteError, NoteVerifier
from audit.tiles import range_hash

if TYPE_CHECKING:
    from audit.ledger import Ledger

FORMAT: Final = "tachiai-inclusion-proof/1"
_HOW = (
    "leaf_hash = SHA-256(0x00 || UTF-8 bytes of event); fold inclusion_path as in RFC 9162 "
    "section 2.1.3.2 to reach root_hash; checkpoint is a C2SP signed note whose size and "
    "root (base64) must equal tree_size and root_hash. `tachiai audit check-proof` does all "
    "of this."
)


class ProofError(ValueError):
    """A proof that is malformed or does not hold; the message says which part failed."""


@dataclass(frozen=True)
class InclusionProof:
    """That the event at `leaf_index` is in the tree of `tree_size` whose root was signed."""

    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    inclusion_path: tuple[bytes, ...]
    root_hash: bytes
    event: bytes
    checkpoint: str

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "inclusion_path": [h.hex() for h in self.inclusion_path],
            "root_hash": self.root_hash.hex(),
            "event": self.event.decode("utf-8"),
            "checkpoint": self.checkpoint,
            "how_to_check": _HOW,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> InclusionProof:
        """Raises: ProofError when a field is missing or malformed."""
        try:
            if obj.get("format") != FORMAT:
                raise ProofError(f"not a {FORMAT} file")
            proof = cls(
                leaf_index=_int(obj["leaf_index"]),
                tree_size=_int(obj["tree_size"]),
                leaf_hash=_hash(obj["leaf_hash"]),
                inclusion_path=tuple(_hash(h) for h in obj["inclusion_path"]),
                root_hash=_hash(obj["root_hash"]),
                event=str(obj["event"]).encode("utf-8"),
                checkpoint=str(obj["checkpoint"]),
            )
        except (KeyError, TypeError, ValueError, UnicodeEncodeError) as exc:
            if isinstance(exc, ProofError):
                raise
            raise ProofError(f"the proof is malformed: {exc.__class__.__name__} {exc}") from exc
        return proof


@dataclass(frozen=True)
class CheckedProof:
    """A proof that held: the event it proves and the checkpoint it is tied to."""

    event: Event
    checkpoint: SignedCheckpoint


def prove(ledger: Ledger, seq: int, checkpoint: SignedCheckpoint) -> InclusionProof:
    """The inclusion proof of event `seq` in the tree `checkpoint` signed.

    Raises:
        LedgerIntegrityError: when the ledger's stored hashes cannot reach the checkpoint's
            root (the ledger changed since it was signed: run `audit verify`).
        ValueError: when the checkpoint does not cover `seq`.
    """
    cp = checkpoint.checkpoint
    if not 0 <= seq < cp.size:
        raise ValueError(f"{checkpoint.describe()} does not cover event {seq}")
    event, stored = ledger.event(seq)
    leaf = hashlib.sha256(b"\x00" + event.body).digest()
    try:
        with ledger.reader() as reader:
            path = tuple(
                range_hash(reader, start, end)
                for start, end in subtree_ranges_for_inclusion(seq, cp.size)
            )
    except LookupError as exc:
        raise LedgerIntegrityError(
            f"the ledger lacks the hashes to prove event {seq}: {exc}", seq=seq
        ) from exc
    if leaf != stored or not verify_inclusion(leaf, seq, cp.size, path, cp.root):
        raise LedgerIntegrityError(
            f"event {seq} cannot be proven against {checkpoint.describe()}: the ledger no "
            "longer matches what was signed; run `tachiai audit verify`",
            seq=seq,
        )
    return InclusionProof(seq, cp.size, leaf, path, cp.root, event.body, checkpoint.note)


def check(proof: InclusionProof, key: NoteVerifier) -> CheckedProof:
    """Check every part of a proof, offline.

    Raises:
        ProofError: naming the first part that does not hold.
    """
    # 1. The event's bytes are the leaf (RFC 9162 §2.1.1: HASH(0x00 || entry)).
    if hashlib.sha256(b"\x00" + proof.event).digest() != proof.leaf_hash:
        raise ProofError("the event's bytes do not hash to leaf_hash: the event was altered")
    try:
        event = decode(proof.event)
    except ValueError as exc:
        raise ProofError(f"the event is not a canonical ledger event: {exc}") from exc
    if event.seq != proof.leaf_index:
        raise ProofError(
            f"the event says seq {event.seq} but the proof is for leaf_index {proof.leaf_index}"
        )
    # 2. The path leads from the leaf to the root (§2.1.3.2).
    if not verify_inclusion(
        proof.leaf_hash,
        proof.leaf_index,
        proof.tree_size,
        list(proof.inclusion_path),
        proof.root_hash,
    ):
        raise ProofError("the inclusion_path does not lead from leaf_hash to root_hash")
    # 3. The root is the one the ledger's key signed, for this tree size.
    try:
        signed = parse(proof.checkpoint, "the proof", key)
    except NoteError as exc:
        raise ProofError(f"the checkpoint is not signed by the trusted key: {exc}") from exc
    if (signed.checkpoint.size, signed.checkpoint.root) != (proof.tree_size, proof.root_hash):
        raise ProofError("the signed checkpoint is for another tree_size or root_hash")
    return CheckedProof(event, signed)


def load(text: str) -> InclusionProof:
    """Raises: ProofError when the text is not a proof file."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ProofError(f"the proof is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProofError("the proof is not a JSON object")
    return InclusionProof.from_json(obj)


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProofError("leaf_index and tree_size must be non-negative integers")
    return value


def _hash(value: Any) -> bytes:
    if not isinstance(value, str) or len(value) != 64 or value != value.lower():
        raise ProofError("hashes must be 64 lowercase hex digits")
    return bytes.fromhex(value)
