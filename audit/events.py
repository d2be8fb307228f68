"""Canonical event bytes of the ledger, defined once.

An event is a JSON object with sorted keys, no insignificant whitespace, UTF-8, integers only
(time in nanoseconds since the epoch; no floats, so no precision can drift between what was
hashed and what is stored). The bytes are stored exactly as hashed and verified as stored; a
reader never re-serialises to check a hash. Events hold hashes, counts, names of columns and
people, and reasons — never personal data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FORMAT_VERSION = 1
_FIELDS = ("v", "seq", "time", "kind", "key", "subject", "agreement", "actor", "data", "prev")


@dataclass(frozen=True)
class Draft:
    """What a writer hands the ledger; seq and prev are assigned at append time.

    `key` makes appends idempotent: a second draft with the same key is not appended again, so a
    writer that crashed after appending can safely retry.
    """

    key: str
    kind: str
    time_ns: int
    subject: str | None = None
    agreement: str | None = None
    actor: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """One event as stored: its position, its exact bytes and their parsed fields."""

    seq: int
    time_ns: int
    kind: str
    key: str
    subject: str | None
    agreement: str | None
    actor: str | None
    data: Mapping[str, Any]
    prev: str
    body: bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "time_ns": self.time_ns, "kind": self.kind, "key": self.key,
            "subject": self.subject, "agreement": self.agreement, "actor": self.actor,
            "data": dict(self.data), "prev": self.prev,
        }


def encode(seq: int, prev: bytes, draft: Draft) -> bytes:
    """The canonical bytes of the event at `seq`, chained to the previous leaf hash `prev`.

    Raises:
        ValueError: for a float, a non-string key or another value JSON cannot hold exactly.
    """
    _require_exact(draft.data, "data")
    obj = {
        "v": FORMAT_VERSION, "seq": seq, "time": draft.time_ns, "kind": draft.kind,
        "key": draft.key, "subject": draft.subject, "agreement": draft.agreement,
        "actor": draft.actor, "data": dict(draft.data), "prev": prev.hex(),
    }
    return canonical_json(obj)


def canonical_json(obj: Any) -> bytes:
    return json.dumps(
        obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def decode(body: bytes) -> Event:
    """Parse stored bytes and insist they are exactly canonical.

    Raises:
        ValueError: when the bytes are not a canonical event of this format.
    """
    obj = json.loads(body.decode("utf-8"))
    if not isinstance(obj, dict) or tuple(sorted(obj)) != tuple(sorted(_FIELDS)):
        raise ValueError("fields differ from the event format")
    if obj["v"] != FORMAT_VERSION:
        raise ValueError(f"unknown event format version {obj['v']!r}")
    if canonical_json(obj) != body:
        raise ValueError("bytes are not in canonical form")
    for name in ("seq", "time"):
        if not isinstance(obj[name], int) or isinstance(obj[name], bool):
            raise ValueError(f"{name} is not an integer")
    if not isinstance(obj["data"], dict) or not isinstance(obj["kind"], str):
        raise ValueError("kind or data has the wrong type")
    return Event(
        seq=obj["seq"], time_ns=obj["time"], kind=obj["kind"], key=obj["key"],
        subject=obj["subject"], agreement=obj["agreement"], actor=obj["actor"],
        data=obj["data"], prev=obj["prev"], body=body,
    )


def _require_exact(value: Any, where: str) -> None:
    if isinstance(value, bool | int | str) or value is None:
        return
    if isinstance(value, float):
        raise ValueError(f"{where}: floats are not allowed in events; use integers")
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: keys must be strings")
            _require_exact(v, f"{where}.{k}")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _require_exact(v, f"{where}[{i}]")
        return
    raise ValueError(f"{where}: {type(value).__name__} cannot be stored exactly")
