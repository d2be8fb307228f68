"""Canonical event bytes of the ledger (監査ログ), defined once: what is hashed is what is stored.

An event is one line of UTF-8 JSON with a fixed field order (see `docs/ledger.md`); integers only
(time in nanoseconds since the epoch, so no precision can drift between what was hashed and what
is stored). Readers never re-serialise to check a hash. Events hold hashes, counts, names of
columns and people, and reasons — never personal data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

FORMAT_VERSION: Final = 1
#: The top-level fields, in the one order they are written.
FIELDS: Final = ("v", "seq", "time", "kind", "key", "subject", "agreement", "actor", "data")
MAX_EVENT_BYTES: Final = 1 << 20
MAX_HEADER_CHARS: Final = 512
INT_MIN: Final = -(1 << 63)
INT_MAX: Final = (1 << 63) - 1

# Header values are written without JSON escapes, so they may not hold what JSON must escape
# (" \ and control characters); DEL is refused too, as no reader should have to render it.
_NOT_PLAIN = re.compile(r'["\\\x00-\x1f\x7f]')
_HEADER_NAMES = ("key", "kind", "subject", "agreement", "actor")
#: The start of every event, up to `"data":`, for (seq, time, kind, key, subject, agreement,
#: actor) in that order. Header values are plain (no escapes), so this is exact.
HEADER: Final = (
    '{"v":1,"seq":%d,"time":%d,"kind":"%s","key":"%s","subject":"%s","agreement":"%s",'
    '"actor":"%s","data":'
)
# Python's own encoder with the canonical settings: sorted keys, no spaces, UTF-8 as is.
_DECODER = json.JSONDecoder()
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)


@dataclass(frozen=True)
class Draft:
    """What a writer hands the ledger; `seq` is assigned at append time.

    `key` makes appends idempotent: a second draft with the same key is not appended again, so
    a writer that crashed after appending can safely retry. `actor` names the designated handler
    (取扱者) who caused the event, if a person did; `--person` queries match it.
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
    """One event as stored: its position, its exact bytes and the fields parsed from them."""

    seq: int
    time_ns: int
    kind: str
    key: str
    subject: str | None
    agreement: str | None
    actor: str | None
    data: Mapping[str, Any]
    body: bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time_ns": self.time_ns,
            "kind": self.kind,
            "key": self.key,
            "subject": self.subject,
            "agreement": self.agreement,
            "actor": self.actor,
            "data": dict(self.data),
        }


def header(
    seq: int, time_ns: int, kind: str, key: str, subject: str, agreement: str, actor: str
) -> bytes:
    """The bytes an event starts with, up to and including `"data":`.

    Empty strings stand for "none". Verification rebuilds this from the indexed columns and
    compares it with the stored bytes, which binds every column to what was hashed.
    """
    return (HEADER % (seq, time_ns, kind, key, subject, agreement, actor)).encode()


def canonical_data(data: Mapping[str, Any]) -> bytes:
    """The canonical bytes of an event's data object (sorted keys, no spaces, UTF-8).

    Raises:
        ValueError: for a float, a non-string key, an integer outside 64 bits, a lone surrogate
            or another value JSON cannot hold exactly.
    """
    if not isinstance(data, Mapping):
        raise ValueError("data must be a mapping")
    data = data if type(data) is dict else dict(data)
    if not _exact(data):
        _require_exact(data, "data")  # raises, naming the first value that cannot be held
        raise ValueError("data holds a value JSON cannot hold exactly")
    try:
        return _ENCODER.encode(data).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("data holds a string that is not valid Unicode") from exc


def check_draft(draft: Draft) -> bytes:
    """Validate a draft and return its canonical data bytes (everything but the header).

    Raises:
        ValueError: naming the field that cannot be stored exactly.
    """
    key, kind, subject, agreement, actor = (
        draft.key,
        draft.kind,
        draft.subject,
        draft.agreement,
        draft.actor,
    )
    # One quick test for the common case; name the field only when something is wrong.
    if not (
        type(key) is str
        and key
        and type(kind) is str
        and kind
        and (subject is None or type(subject) is str)
        and (agreement is None or type(agreement) is str)
        and (actor is None or type(actor) is str)
        and max(len(key), len(kind), len(subject or ""), len(agreement or ""), len(actor or ""))
        <= MAX_HEADER_CHARS
        and not _NOT_PLAIN.search(joined := f"{key} {kind} {subject} {agreement} {actor}")
        and _encodable(joined)
    ):
        if not (type(key) is str and key and type(kind) is str and kind):
            raise ValueError("key and kind must be non-empty strings")
        for name, value in zip(_HEADER_NAMES, (key, kind, subject, agreement, actor), strict=True):
            require_plain(value, name)
    if type(draft.time_ns) is not int or not 0 <= draft.time_ns <= INT_MAX:
        raise ValueError("time_ns must be a non-negative 64-bit integer")
    data = canonical_data(draft.data)
    # The header is at most 5 plain fields and 3 integers, so this bounds the whole event.
    if len(data) > MAX_EVENT_BYTES - 6 * MAX_HEADER_CHARS * 4:
        raise ValueError(f"the event's data is {len(data)} bytes, too large for one event")
    return data


def encode(seq: int, draft: Draft, data: bytes | None = None) -> bytes:
    """The canonical bytes of `draft` as the event at `seq`.

    Raises:
        ValueError: when the draft cannot be stored exactly, or the event is too large.
    """
    if data is None:
        data = check_draft(draft)
    body = (
        header(
            seq,
            draft.time_ns,
            draft.kind,
            draft.key,
            draft.subject or "",
            draft.agreement or "",
            draft.actor or "",
        )
        + data
        + b"}"
    )
    if len(body) > MAX_EVENT_BYTES:
        raise ValueError(f"the event is {len(body)} bytes, over the limit of {MAX_EVENT_BYTES}")
    return body


def decode(body: bytes) -> Event:
    """Parse stored bytes and insist they are exactly canonical (the deep check).

    Raises:
        ValueError: when the bytes are not a canonical event of this format.
    """
    try:
        obj = json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_float,
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict) or tuple(obj) != FIELDS:
        raise ValueError("the fields differ from the event format")
    if obj["v"] != FORMAT_VERSION or not _is_int(obj["v"]):
        raise ValueError(f"unknown event format version {obj['v']!r}")
    for name in ("seq", "time"):
        if not _is_int(obj[name]) or obj[name] < 0:
            raise ValueError(f"{name} is not a non-negative integer")
    for name in ("kind", "key", "subject", "agreement", "actor"):
        if not isinstance(obj[name], str):
            raise ValueError(f"{name} is not a string")
    if not isinstance(obj["data"], dict):
        raise ValueError("data is not an object")
    draft = Draft(
        key=obj["key"],
        kind=obj["kind"],
        time_ns=obj["time"],
        subject=obj["subject"] or None,
        agreement=obj["agreement"] or None,
        actor=obj["actor"] or None,
        data=obj["data"],
    )
    if encode(obj["seq"], draft) != body:
        raise ValueError("the bytes are not in canonical form")
    return _event(obj["seq"], draft, body)


def parse(body: bytes) -> Event:
    """Parse stored bytes without the canonical check, for reading verified ledgers fast.

    Raises:
        ValueError: when the bytes are not JSON of the event's shape.
    """
    try:
        obj = _DECODER.decode(body.decode("utf-8"))
        return Event(
            seq=obj["seq"],
            time_ns=obj["time"],
            kind=obj["kind"],
            key=obj["key"],
            subject=obj["subject"] or None,
            agreement=obj["agreement"] or None,
            actor=obj["actor"] or None,
            data=obj["data"],
            body=body,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not an event: {exc.__class__.__name__}") from exc


def require_plain(value: object, name: str) -> None:
    """Raises: ValueError unless `value` is None or a short string with nothing to escape."""
    if value is None:
        return
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    if len(value) > MAX_HEADER_CHARS:
        raise ValueError(f"{name} is longer than {MAX_HEADER_CHARS} characters")
    if _NOT_PLAIN.search(value):
        raise ValueError(f"{name} may not hold quotes, backslashes or control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name} is not valid Unicode") from exc


def _event(seq: int, draft: Draft, body: bytes) -> Event:
    return Event(
        seq=seq,
        time_ns=draft.time_ns,
        kind=draft.kind,
        key=draft.key,
        subject=draft.subject,
        agreement=draft.agreement,
        actor=draft.actor,
        data=draft.data,
        body=body,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _no_float(text: str) -> Any:
    raise ValueError(f"a number that is not an integer: {text}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _exact(value: Any) -> bool:
    """Whether JSON holds `value` exactly: the fast walk; `_require_exact` says why not."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(INT_MIN <= value <= INT_MAX)
    if kind is dict:
        return all(type(k) is str and _exact(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_exact(v) for v in value)
    return False


def _require_exact(value: Any, where: str) -> None:
    if isinstance(value, bool | str) or value is None:
        return
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise ValueError(f"{where}: integers must fit in 64 bits")
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


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
