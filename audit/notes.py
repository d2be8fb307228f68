"""C2SP signed notes with Ed25519 keys: the envelope of the ledger's checkpoints.

A note is UTF-8 text ending in a newline, a blank line, then lines `— <key name> <base64(key id
|| signature)>`; the signature covers the text including its final newline (c2sp.org/signed-note).
Key id = SHA-256(name || 0x0A || 0x01 || public key)[:4]. Keys are written in the reference
formats: `name+hexid+base64(0x01||pub)` and `PRIVATE+KEY+name+hexid+base64(0x01||seed)`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

ED25519: Final = 0x01  # the signed-note signature type of Ed25519
SIGNATURE_PREFIX: Final = "— "  # U+2014 EM DASH, then a space
MAX_NOTE_BYTES: Final = 1 << 16
MAX_SIGNATURES: Final = 100
_NAME = re.compile(r"^[^\s+]+$")


class NoteError(ValueError):
    """A note or key that is malformed, or a note no trusted key signed."""


def key_id(name: str, public: bytes) -> bytes:
    """The 4-byte key id of the signed-note spec for an Ed25519 key."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ED25519]) + public).digest()[:4]


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted public key with its name, as an auditor holds it (`name+hexid+base64`)."""

    name: str
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public)

    @classmethod
    def from_text(cls, text: str) -> NoteVerifier:
        """Parse a verifier key line.

        Raises:
            NoteError: when it is not an Ed25519 verifier key with a matching key id.
        """
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError("a verifier key has the form NAME+KEYID+KEY")
        name, hex_id, encoded = parts
        raw = _b64(encoded, "the verifier key")
        if not _NAME.match(name) or len(raw) != 33 or raw[0] != ED25519:
            raise NoteError("not an Ed25519 verifier key")
        verifier = cls(name, raw[1:])
        if hex_id != verifier.key_id.hex():
            raise NoteError("the key id does not match the key")
        return verifier

    def to_text(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{_e64(bytes([ED25519]) + self.public)}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, text)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True, repr=False)
class NoteSigner:
    """An Ed25519 signing key with its name. Its text form is a secret: keep it in a 0600 file."""

    name: str
    seed: bytes

    def __repr__(self) -> str:
        return f"NoteSigner({self.name!r}, <secret>)"

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        """Raises: NoteError for a name with spaces or '+'."""
        if not _NAME.match(name):
            raise NoteError("a key name may not be empty or hold spaces or '+'")
        seed = Ed25519PrivateKey.generate().private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()
        )
        return cls(name, seed)

    @classmethod
    def from_text(cls, text: str) -> NoteSigner:
        """Parse `PRIVATE+KEY+name+hexid+base64(0x01||seed)`.

        Raises:
            NoteError: when it is not such a key, or its id does not match.
        """
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("not a signed-note private key")
        name, hex_id, encoded = parts[2:]
        raw = _b64(encoded, "the private key")
        if not _NAME.match(name) or len(raw) != 33 or raw[0] != ED25519:
            raise NoteError("not an Ed25519 signed-note private key")
        signer = cls(name, raw[1:])
        if hex_id != signer.verifier().key_id.hex():
            raise NoteError("the key id does not match the key")
        return signer

    def to_text(self) -> str:
        return (
            f"PRIVATE+KEY+{self.name}+{self.verifier().key_id.hex()}+"
            f"{_e64(bytes([ED25519]) + self.seed)}"
        )

    def verifier(self) -> NoteVerifier:
        public = (
            Ed25519PrivateKey.from_private_bytes(self.seed)
            .public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        return NoteVerifier(self.name, public)

    def sign(self, text: str) -> str:
        """The signed note of `text` (which must end in a newline and hold no blank line).

        Raises:
            NoteError: for text a note cannot carry.
        """
        _check_text(text)
        raw = text.encode("utf-8")
        signature = Ed25519PrivateKey.from_private_bytes(self.seed).sign(raw)
        blob = self.verifier().key_id + signature
        return f"{text}\n{SIGNATURE_PREFIX}{self.name} {_e64(blob)}\n"


def open_note(note: str, verifier: NoteVerifier) -> str:
    """The text of `note` if `verifier` signed it.

    Lines from other keys are ignored (a note may carry several); a line that names the
    verifier's key but does not verify rejects the note.

    Raises:
        NoteError: when the note is malformed or not signed by `verifier`.
    """
    text, signatures = split_note(note)
    raw = text.encode("utf-8")
    for name, blob in signatures:
        if name == verifier.name and blob[:4] == verifier.key_id:
            if verifier.verify(raw, blob[4:]):
                return text
            raise NoteError(f"the signature of {name} does not verify")
    raise NoteError(f"the note is not signed by the trusted key {verifier.name}")


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """The text and the (key name, key id || signature) pairs of a note, unverified.

    Raises:
        NoteError: when the note is malformed.
    """
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise NoteError("the note is too large")
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("a signed note is text, a blank line and signature lines")
    text, lines = note[: cut + 1], note[cut + 2 : -1].split("\n")
    _check_text(text)
    if not 1 <= len(lines) <= MAX_SIGNATURES:
        raise NoteError("a signed note needs 1 to 100 signature lines")
    signatures = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("a signature line starts with an em dash and a space")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        blob = _b64(encoded, "a signature")
        if not _NAME.match(name) or len(blob) < 5:
            raise NoteError("a malformed signature line")
        signatures.append((name, blob))
    return text, signatures


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text or text.startswith("\n"):
        raise NoteError("note text must end in a newline and hold no blank line")
    if any(c < " " and c != "\n" for c in text):
        raise NoteError("note text may not hold control characters")


def _e64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _b64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise NoteError(f"{what} is not base64") from exc
    if _e64(raw) != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw
