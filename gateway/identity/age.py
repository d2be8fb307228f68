"""The `age` public-key profile: age v1 files to X25519 recipients, streamed, on `cryptography`.

Implements the age v1 format (C2SP age.md: header, X25519 stanzas, HMAC, STREAM payload in
64 KiB chunks) so what we seal opens with `age -d` and what `age -r` seals opens here. Memory
stays flat whatever the file size. It must never log or put in a message a key or a file key,
and never hand out plaintext of a chunk that failed authentication.
Over 400 lines for one reason: it implements one specification, read section by section.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import queue
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.errors import InputError, KeyFileError
from gateway.i18n import N_

VERSION_LINE = b"age-encryption.org/v1"
RECIPIENT_HRP = "age"
IDENTITY_HRP = "age-secret-key-"
CHUNK = 64 * 1024  # age v1 "payload": plaintext chunks of 64 KiB
_TAG = 16
_X25519_LABEL = b"age-encryption.org/v1/X25519"
_MAX_HEADER = 64 * 1024  # we refuse headers larger than this (age itself has no hard limit)
_COLUMNS = 64  # stanza bodies are wrapped at 64 columns
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_VCHAR = re.compile(rb"^[\x21-\x7e]+$")
_RAW = serialization.Encoding.Raw


class AgeError(InputError):
    """An age file is malformed, not for any of our identities, or fails authentication."""


@dataclass(frozen=True)
class Counted:
    """What a streamed encryption or decryption wrote: output size and SHA-256 (hex)."""

    size: int
    sha256: str


def parse_recipient(text: str) -> X25519PublicKey:
    """An `age1…` recipient string (Bech32, BIP 173) as an X25519 public key.

    Raises:
        KeyFileError: it is not a valid age X25519 recipient.
    """
    hrp, data = _bech32_decode(text.strip(), "an age recipient")
    if hrp != RECIPIENT_HRP or len(data) != 32:
        raise KeyFileError(
            N_("this is not an age X25519 recipient (expected age1… of 32 bytes)"),
            hint=N_("copy the recipient line `age-keygen -y` prints, unchanged"),
        )
    return X25519PublicKey.from_public_bytes(data)


def recipient_string(key: X25519PublicKey | X25519PrivateKey) -> str:
    """The `age1…` string of a public key (or of a private key's public half)."""
    public = key.public_key() if isinstance(key, X25519PrivateKey) else key
    return _bech32_encode(RECIPIENT_HRP, public.public_bytes(_RAW, serialization.PublicFormat.Raw))


def identity_string(key: X25519PrivateKey) -> str:
    """The `AGE-SECRET-KEY-1…` string of a private key, as age-keygen writes it."""
    raw = key.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return _bech32_encode(IDENTITY_HRP, raw).upper()


def parse_identities(text: str) -> list[X25519PrivateKey]:
    """The X25519 identities of an identity file (age-keygen format; `#` lines are comments).

    Raises:
        KeyFileError: a line is not an AGE-SECRET-KEY-1… string, or there is none.
    """
    keys: list[X25519PrivateKey] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        hrp, data = _bech32_decode(line, "an age identity")
        if hrp != IDENTITY_HRP or len(data) != 32 or line != line.upper():
            raise KeyFileError(
                N_("an identity file line is not an age X25519 secret key"),
                hint=N_("give the file `age-keygen -o FILE` wrote"),
            )
        keys.append(X25519PrivateKey.from_private_bytes(data))
    if not keys:
        raise KeyFileError(
            N_("the identity file holds no age secret key"),
            hint=N_("give the file `age-keygen -o FILE` wrote"),
        )
    return keys


def encrypt(
    src: BinaryIO,
    dst: BinaryIO,
    recipients: Sequence[X25519PublicKey],
    on_plain: Callable[[memoryview], None] | None = None,
) -> Counted:
    """Encrypt `src` to every recipient into `dst`, streaming; hash the output as it is written.

    `on_plain` sees every plaintext chunk once (the caller hashes the approved bytes in the same
    pass as the encryption).

    Raises:
        AgeError: no recipient was given (an empty list would encrypt to nobody).
        OSError: reading or writing failed.
    """
    if not recipients:
        raise AgeError(
            N_("an age file needs at least one recipient"),
            hint=N_("register an age_recipient for a receiving handler"),
        )
    file_key = os.urandom(16)
    header = _header(file_key, recipients)
    nonce = os.urandom(16)
    aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
    out = _HashingWriter(dst)
    out.put([header, nonce])
    try:
        # Two buffers in turn: one chunk of look-ahead tells whether this chunk is the last.
        views = (memoryview(bytearray(CHUNK)), memoryview(bytearray(CHUNK)))
        n = _read_full(src, views[0])
        counter = 0
        batch: list[bytes] = []
        while True:
            view, nview = views[counter % 2], views[(counter + 1) % 2]
            m = _read_full(src, nview) if n == CHUNK else 0
            last = m == 0
            if on_plain is not None:
                on_plain(view[:n])
            batch.append(aead.encrypt(_chunk_nonce(counter, last), view[:n], None))
            if last:
                break
            if len(batch) == _BATCH_CHUNKS:
                out.put(batch)
                batch = []
            counter += 1
            n = m
        out.put(batch)
    finally:
        out.close()
    return Counted(out.size, out.digest.hexdigest())


def decrypt(src: BinaryIO, dst: BinaryIO, identities: Iterable[X25519PrivateKey]) -> Counted:
    """Decrypt an age v1 file from `src` into `dst`, streaming; count and hash the plaintext.

    Raises:
        AgeError: the header is malformed, no stanza is for our identities, the header MAC or a
            payload chunk fails authentication, or the file is truncated.
        OSError: reading or writing failed.
    """
    stanzas, mac_input, mac = _read_header(src)
    file_key = _unwrap(stanzas, list(identities))
    expected = hmac.new(_hkdf(file_key, b"", b"header"), mac_input, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, mac):
        raise AgeError(
            N_("the age header's MAC does not verify: the file was altered"),
            hint=N_("ask the sender to send the file again"),
        )
    nonce = src.read(16)
    if len(nonce) != 16:
        raise AgeError(N_("the age file is truncated (no payload nonce)"), hint=_AGAIN)
    aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
    digest = hashlib.sha256()
    size = 0
    counter = 0
    chunk = src.read(CHUNK + _TAG)
    while True:
        nxt = src.read(CHUNK + _TAG) if len(chunk) == CHUNK + _TAG else b""
        last = not nxt
        if len(chunk) < _TAG:
            raise AgeError(N_("the age payload is truncated"), hint=_AGAIN)
        try:
            plain = aead.decrypt(_chunk_nonce(counter, last), chunk, None)
        except InvalidTag:
            raise AgeError(
                N_("chunk {counter} of the age payload fails authentication: the file was "
                   "altered or truncated").format(counter=counter),
                hint=_AGAIN,
            ) from None
        if last and not plain and counter > 0:
            raise AgeError(N_("the age payload ends with an empty chunk (not allowed)"),
                           hint=_AGAIN)
        dst.write(plain)
        digest.update(plain)
        size += len(plain)
        if last:
            return Counted(size, digest.hexdigest())
        counter += 1
        chunk = nxt


_AGAIN = N_("ask the sender to send the file again")


@dataclass(frozen=True)
class _Stanza:
    kind: bytes
    args: tuple[bytes, ...]
    body: bytes


#: Sealed chunks handed to the writer thread at a time (1 MiB): few hand-offs, little memory.
_BATCH_CHUNKS = 16


class _HashingWriter:
    """Writes to a file, counting and hashing what it wrote, on a thread of its own: hashing
    and writing the sealed bytes (both free of the interpreter lock) run beside the reading,
    hashing and encryption of the next chunks. Batches are written in the order put, and at
    most a few wait (a bounded queue). An error of the thread's is raised by the next `put`
    or by `close`, which always ends the thread before the caller closes the file."""

    def __init__(self, dst: BinaryIO) -> None:
        self.dst = dst
        self.digest = hashlib.sha256()
        self.size = 0
        self._queue: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="age-writer", daemon=True)
        self._thread.start()

    def put(self, batch: list[bytes]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(batch)

    def close(self) -> None:
        """Wait until every batch is written; raise the thread's error, if any."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is not None:
                continue  # failed: only drain, so `put` never blocks
            try:
                for data in batch:
                    self.dst.write(data)
                    self.digest.update(data)
                    self.size += len(data)
            except BaseException as exc:  # handed to the encrypting thread
                self._error = exc


def _header(file_key: bytes, recipients: Sequence[X25519PublicKey]) -> bytes:
    lines = [VERSION_LINE]
    for recipient in recipients:
        share, body = _wrap_x25519(file_key, recipient)
        lines.append(b"-> X25519 " + _b64(share))
        encoded = _b64(body)
        # Bodies are wrapped at 64 columns; the last line is always shorter (maybe empty).
        lines.extend(encoded[i : i + _COLUMNS] for i in range(0, len(encoded), _COLUMNS))
        if len(encoded) % _COLUMNS == 0:
            lines.append(b"")
    mac_input = b"\n".join(lines) + b"\n---"
    mac = hmac.new(_hkdf(file_key, b"", b"header"), mac_input, hashlib.sha256).digest()
    return mac_input + b" " + _b64(mac) + b"\n"


def _wrap_x25519(file_key: bytes, recipient: X25519PublicKey) -> tuple[bytes, bytes]:
    """age v1 "X25519 recipient stanza": ephemeral share and the wrapped file key."""
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
    theirs = recipient.public_bytes(_RAW, serialization.PublicFormat.Raw)
    try:
        shared = ephemeral.exchange(recipient)
    except ValueError:
        raise KeyFileError(
            N_("the age recipient is a low-order point and cannot be used"),
            hint=N_("register a key made by age-keygen"),
        ) from None
    if shared == bytes(32):
        raise KeyFileError(
            N_("the age recipient is a low-order point and cannot be used"),
            hint=N_("register a key made by age-keygen"),
        )
    wrap_key = _hkdf(shared, share + theirs, _X25519_LABEL)
    return share, ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None)


def _unwrap(stanzas: Sequence[_Stanza], identities: Sequence[X25519PrivateKey]) -> bytes:
    for stanza in stanzas:
        if stanza.kind == b"scrypt" and len(stanzas) != 1:
            # age v1: an scrypt stanza must be the only one.
            raise AgeError(N_("the age header mixes a passphrase stanza with others"), hint=_AGAIN)
    for stanza in stanzas:
        if stanza.kind != b"X25519":
            continue  # other recipient types and grease are ignored
        if len(stanza.args) != 1 or len(stanza.body) != 32:
            raise AgeError(N_("an X25519 stanza of the age header is malformed"), hint=_AGAIN)
        share = _unb64(stanza.args[0], "an X25519 share")
        if len(share) != 32:
            raise AgeError(N_("an X25519 stanza of the age header is malformed"), hint=_AGAIN)
        for identity in identities:
            ours = identity.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
            try:
                shared = identity.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError:
                raise AgeError(N_("an X25519 stanza carries a low-order point"),
                               hint=_AGAIN) from None
            wrap_key = _hkdf(shared, share + ours, _X25519_LABEL)
            try:
                return ChaCha20Poly1305(wrap_key).decrypt(bytes(12), stanza.body, None)
            except InvalidTag:
                continue
    raise AgeError(
        N_("the age file is not encrypted to any of the given identities"),
        hint=N_("use the identity whose recipient the sender encrypted to"),
    )


def _read_header(src: BinaryIO) -> tuple[list[_Stanza], bytes, bytes]:
    """Parse the header strictly; return stanzas, the bytes the MAC covers, and the MAC."""
    consumed = 0

    def line() -> bytes:
        nonlocal consumed
        raw = src.readline(_MAX_HEADER - consumed + 1)
        consumed += len(raw)
        if not raw.endswith(b"\n") or consumed > _MAX_HEADER:
            raise AgeError(
                N_("this is not an age file, or its header is truncated or too large"), hint=_AGAIN
            )
        return raw[:-1]

    if line() != VERSION_LINE:
        raise AgeError(
            N_("this is not an age v1 file (the first line is not {line})").format(
                line=VERSION_LINE.decode()),
            hint=_AGAIN,
        )
    seen = [VERSION_LINE]
    stanzas: list[_Stanza] = []
    current = line()
    while current.startswith(b"-> "):
        seen.append(current)
        parts = current[3:].split(b" ")
        if not all(_VCHAR.match(p) for p in parts):
            raise AgeError(N_("an age header stanza line is malformed"), hint=_AGAIN)
        body = b""
        while True:
            body_line = line()
            seen.append(body_line)
            if len(body_line) > _COLUMNS:
                raise AgeError(N_("an age header stanza body line is too long"), hint=_AGAIN)
            body += body_line
            if len(body_line) < _COLUMNS:
                break
        stanzas.append(_Stanza(parts[0], tuple(parts[1:]), _unb64(body, "a stanza body")))
        current = line()
    if not current.startswith(b"--- ") or not stanzas:
        raise AgeError(N_("the age header is malformed (no recipients, or no MAC line)"),
                       hint=_AGAIN)
    mac = _unb64(current[4:], "the header MAC")
    if len(mac) != 32:
        raise AgeError(N_("the age header MAC has the wrong length"), hint=_AGAIN)
    return stanzas, b"\n".join(seen) + b"\n---", mac


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA-256 (RFC 5869) to 32 bytes, as age v1 uses it everywhere."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _chunk_nonce(counter: int, last: bool) -> bytes:
    """STREAM nonce: 11-byte big-endian chunk counter, then 0x01 for the last chunk."""
    if counter >= 1 << 88:
        raise AgeError(N_("the file is too large for one age payload"), hint=_AGAIN)
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _read_full(src: BinaryIO, view: memoryview) -> int:
    """Fill `view` unless the stream ends first; return how many bytes were read."""
    got = 0
    while got < len(view):
        n = src.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


def _b64(data: bytes) -> bytes:
    """Base64 without padding (RFC 4648 §3.2), as age writes it."""
    return base64.b64encode(data).rstrip(b"=")


def _unb64(data: bytes, what: str) -> bytes:
    """Strict unpadded base64: padding, stray characters and non-canonical tails are refused."""
    if b"=" in data or b"\r" in data:
        raise AgeError(N_("{what} in the age header is not canonical base64").format(what=what),
                       hint=_AGAIN)
    try:
        decoded = base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise AgeError(N_("{what} in the age header is not valid base64").format(what=what),
                       hint=_AGAIN) from None
    if _b64(decoded) != data:
        raise AgeError(N_("{what} in the age header is not canonical base64").format(what=what),
                       hint=_AGAIN)
    return decoded


def _bech32_polymod(values: Iterable[int]) -> int:
    """BIP 173 checksum polynomial."""
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: Iterable[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad and bits:
        out.append((acc << (to_bits - bits)) & maxv)
    elif not pad and (bits >= from_bits or (acc << (to_bits - bits)) & maxv):
        raise ValueError("non-zero padding")
    return out


def _bech32_encode(hrp: str, data: bytes) -> str:
    five = _convert_bits(data, 8, 5, True)
    poly = _bech32_polymod([*_hrp_expand(hrp), *five, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32[d] for d in five + checksum)


def _bech32_decode(text: str, what: str) -> tuple[str, bytes]:
    """Decode Bech32 (BIP 173; age lifts the 90-character limit). Mixed case is refused."""
    bad = KeyFileError(
        N_("this is not {what} (damaged Bech32 text)").format(what=what),
        hint=N_("copy the whole line again, unchanged")
    )
    if text.lower() != text and text.upper() != text:
        raise bad
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text) or not text.isascii():
        raise bad
    hrp, rest = text[:pos], text[pos + 1 :]
    if any(c not in _BECH32 for c in rest):
        raise bad
    values = [_BECH32.index(c) for c in rest]
    if _bech32_polymod([*_hrp_expand(hrp), *values]) != 1:
        raise bad
    try:
        return hrp, bytes(_convert_bits(values[:-6], 5, 8, False))
    except ValueError:
        raise bad from None
