"""Signed checkpoints (C2SP tlog-checkpoint in a signed note): size, root and time of the tree.

The text is four lines an auditor can read: the log's origin, the tree size, the root hash in
base64, and `time` in JST to the nanosecond. Copies are kept in the ledger and in places the
database owner cannot rewrite (a folder on another mount, syslog); this module reads them back:
single notes, history files of many notes, and syslog lines `tachiai-checkpoint <base64>`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from audit.notes import NoteError, NoteSigner, NoteVerifier, open_note, split_note

JST: Final = dt.timezone(dt.timedelta(hours=9), "JST")
SYSLOG_MARK: Final = "tachiai-checkpoint "
PUBLIC_KEY_FILE: Final = "ledger.pub"
LATEST_FILE: Final = "checkpoint"
HISTORY_DIR: Final = "history"
HISTORY_SUFFIX: Final = ".checkpoints"
_TIME = re.compile(r"^time (\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{9})\+09:00$")
_SIZE = re.compile(r"^(0|[1-9][0-9]{0,18})$")
_SYSLOG = re.compile(re.escape(SYSLOG_MARK) + r"([A-Za-z0-9+/=]+)")


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint says: this log (origin) had `size` events with root `root` at a time."""

    origin: str
    size: int
    root: bytes
    time_ns: int

    def text(self) -> str:
        """The note text (C2SP tlog-checkpoint: origin, size, base64 root, extension line)."""
        return (
            f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode('ascii')}\n"
            f"time {format_time(self.time_ns)}\n"
        )

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Raises: NoteError when the text is not a checkpoint of this format."""
        lines = text.split("\n")
        if len(lines) != 5 or lines[4] != "":
            raise NoteError("a checkpoint has four lines: origin, size, root, time")
        origin, size, root, when = lines[:4]
        if not origin or " " in origin or not _SIZE.match(size):
            raise NoteError("a checkpoint's origin or size is malformed")
        try:
            raw = base64.b64decode(root.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise NoteError("a checkpoint's root is not base64") from exc
        if len(raw) != 32 or base64.b64encode(raw).decode("ascii") != root:
            raise NoteError("a checkpoint's root is not a 32-byte hash")
        return cls(origin, int(size), raw, parse_time(when))


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with its note exactly as signed, where it was found, and whether its
    signature was checked against a trusted key."""

    checkpoint: Checkpoint
    note: str
    source: str
    verified: bool

    def describe(self) -> str:
        cp = self.checkpoint
        return f"the checkpoint of {format_time(cp.time_ns)} (size {cp.size}) from {self.source}"


def sign(
    checkpoint: Checkpoint, signer: NoteSigner, source: str = "this gateway"
) -> SignedCheckpoint:
    return SignedCheckpoint(checkpoint, signer.sign(checkpoint.text()), source, True)


def parse(note: str, source: str, verifier: NoteVerifier | None) -> SignedCheckpoint:
    """Read a signed checkpoint; with a verifier, insist that it signed it.

    Raises:
        NoteError: when the note is malformed, or not signed by the verifier's key.
    """
    if verifier is not None:
        text = open_note(note, verifier)
    else:
        text, _signatures = split_note(note)
    return SignedCheckpoint(Checkpoint.from_text(text), note, source, verifier is not None)


def format_time(ns: int) -> str:
    """ISO 8601 in JST with nine fractional digits: exact, and readable in Japan."""
    seconds, frac = divmod(ns, 1_000_000_000)
    moment = dt.datetime.fromtimestamp(seconds, JST)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{frac:09d}+09:00"


def parse_time(line: str) -> int:
    """The nanoseconds of a `time …` line written by `format_time`.

    Raises:
        NoteError: when the line is malformed.
    """
    m = _TIME.match(line)
    if not m:
        raise NoteError("a checkpoint's time line is malformed")
    y, mo, d, h, mi, s, frac = (int(g) for g in m.groups())
    try:
        moment = dt.datetime(y, mo, d, h, mi, s, tzinfo=JST)
    except ValueError as exc:
        raise NoteError("a checkpoint's time is not a date") from exc
    return int(moment.timestamp()) * 1_000_000_000 + frac


def notes_in(text: str) -> list[str]:
    """Every signed note in a file's text: one note, a history of notes separated by blank
    lines, or syslog lines carrying `tachiai-checkpoint <base64 note>`."""
    found = [_unbase64(m.group(1)) for m in _SYSLOG.finditer(text)]
    if found:
        return [n for n in found if n is not None]
    notes: list[str] = []
    body: list[str] = []
    sigs: list[str] = []
    for line in [*text.split("\n"), ""]:
        if line.startswith("— ") and body:
            sigs.append(line)
        elif line == "":
            if sigs:
                notes.append("\n".join(body) + "\n\n" + "\n".join(sigs) + "\n")
                body, sigs = [], []
        elif sigs:  # text after signatures without a blank line: start over
            notes.append("\n".join(body) + "\n\n" + "\n".join(sigs) + "\n")
            body, sigs = [line], []
        else:
            body.append(line)
    return notes


def read_places(paths: Iterable[Path]) -> tuple[list[tuple[str, str]], NoteVerifier | None]:
    """The notes (note, source) found in files and checkpoint folders, and the public key
    a folder offers in `ledger.pub` (None if none does).

    Raises:
        OSError: when a named file or folder cannot be read.
        NoteError: when a folder's ledger.pub is malformed.
    """
    notes: list[tuple[str, str]] = []
    key: NoteVerifier | None = None
    for path in paths:
        files = [path]
        if path.is_dir():
            history = path / HISTORY_DIR
            files = [p for p in (path / LATEST_FILE,) if p.is_file()]
            if history.is_dir():
                files += sorted(history.glob(f"*{HISTORY_SUFFIX}"))
            pub = path / PUBLIC_KEY_FILE
            if pub.is_file() and key is None:
                key = NoteVerifier.from_text(pub.read_text(encoding="utf-8"))
        for file in files:
            text = file.read_text(encoding="utf-8", errors="replace")
            notes.extend((note, str(file)) for note in notes_in(text))
    return notes, key


def history_name(ns: int) -> str:
    """The history file a checkpoint made at `ns` is appended to (one file per JST day)."""
    return f"{dt.datetime.fromtimestamp(ns // 1_000_000_000, JST):%Y-%m-%d}{HISTORY_SUFFIX}"


def syslog_line(signed: SignedCheckpoint) -> str:
    """One line for syslog that carries the note exactly (base64)."""
    return SYSLOG_MARK + base64.b64encode(signed.note.encode("utf-8")).decode("ascii")


def _unbase64(text: str) -> str | None:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
