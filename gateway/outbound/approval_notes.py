"""The names in the approvals folder and the notes the daemon leaves there for witnesses.

Shared by the daemon's side (`gateway.outbound.approval_folder`, which takes signatures and
writes the notes) and the witness's side (`gateway.outbound.handover`, which hands a signature
to the running daemon and reads its verdict). Apart from both so that the witness's side loads
nothing of the daemon's: only the standard library and the words.

A note is a few lines `LABEL / key: value` (Japanese, then English) that people read and the
witness's side parses:

- `ID.sig.refused`: why the last `ID.sig` was not counted; its `file` line names where the
  refused file was kept (`ID.sig → refused/ID.sig.TIME`), so a witness's side tells its own
  refusal (the file with its inode) from an older one.
- `ID.sig.accepted`: that a signature was counted, by whom, how many of how many, and the
  SHA-256 of the signature file, so a witness's side tells its own acceptance from another's.

Each is written before the signature file leaves its taking name: once a signature is gone,
its verdict is already in place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from gateway.i18n import wording

SIGNATURE_SUFFIX = ".sig"
#: Beside a refused ID.sig: why, and what to do.
NOTE_SUFFIX = ".sig.refused"
#: Beside a counted ID.sig: by whom, how many of how many.
ACCEPTED_SUFFIX = ".sig.accepted"
REFUSED = "refused"
#: A taken signature's name while the daemon reads it: `.ID.sig.OWNER.taking`.
TAKING = ".taking"
#: An SSH signature is well under 2 KiB; anything larger is not one.
MAX_SIGNATURE_BYTES = 64 * 1024
#: A note is a few hundred bytes; anything larger is not one.
MAX_NOTE_BYTES = 64 * 1024
#: A transfer's or a fan-out's id: the only names this folder publishes or takes.
ID_PATTERN = re.compile(r"[tf]-[0-9a-f]{12}")
_ARROW = " → "


def signature_id(name: str) -> str | None:
    """The id a dropped file's name signs for, or None when the name is not `ID.sig`.

    Only the exact form is taken: a name with a path in it (`../`), a NUL, a hidden or
    temporary name, or any other id shape is left alone.
    """
    if not name.endswith(SIGNATURE_SUFFIX):
        return None
    ident = name[: -len(SIGNATURE_SUFFIX)]
    return ident if ID_PATTERN.fullmatch(ident) else None


def refused_note(name: str, kept: str, rule: str, message: str, hint: str | None) -> bytes:
    """ID.sig.refused: the reason in Japanese, then in English (the daemon's own log is
    English); the rule and file names as they are. `kept`: the refused file's name in
    refused/."""
    lines = [
        "署名は受け付けられませんでした / the signature was not accepted",
        "",
        f"ファイル / file: {name}{_ARROW}{REFUSED}/{kept}",
        f"規則 / rule: {rule}",
        f"理由: {wording(message, 'ja')}",
        f"reason: {message}",
    ]
    if hint:
        lines += [f"対処: {wording(hint, 'ja')}", f"fix: {hint}"]
    return ("\n".join(lines) + "\n").encode("utf-8")


def accepted_note(name: str, *, witness: str, count: int, needed: int, state: str,
                  parts: int, signature_sha256: str) -> bytes:
    """ID.sig.accepted: the signature in `name` counted for `witness`, `count` of `needed`
    witnesses (of the first part when a fan-out has `parts` > 1); the transfer is now in
    `state`."""
    lines = [
        "署名は受け付けられました / the signature was counted",
        "",
        f"ファイル / file: {name}",
        f"立会者 / witness: {witness}",
        f"承認 / approvals: {count}",
        f"必要 / needed: {needed}",
        f"部分 / parts: {parts}",
        f"状態 / state: {state}",
        f"署名 / signature-sha256: {signature_sha256}",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def fields(note: str) -> Mapping[str, str]:
    """A note's values by their English key (`rule`, `reason`, `fix`, `witness`, …)."""
    found: dict[str, str] = {}
    for line in note.splitlines():
        label, sep, value = line.partition(": ")
        if not sep:
            continue
        key = label.rpartition(" / ")[2]
        found.setdefault(key, value)
    return found


def kept_name(note: Mapping[str, str]) -> str | None:
    """The name in refused/ that a refused note's `file` line names, if it names one."""
    where = note.get("file", "").partition(_ARROW)[2]
    prefix = f"{REFUSED}/"
    if not where.startswith(prefix) or "/" in where[len(prefix):]:
        return None
    return where[len(prefix):]
