"""Canonical event bytes: a known answer, round trips, and everything that must be refused."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.events import Draft, check_draft, decode, encode, header, parse

KNOWN = Draft(
    key="t-0001:transfer.checked",
    kind="transfer.checked",
    time_ns=1_790_000_000_123_456_789,
    subject="t-0001",
    agreement="agreement-a",
    actor="handler-1",
    data={
        "sha256": "ab" * 32,
        "rows": 2,
        "flow": "monthly",
        "witnesses_required": 1,
        "note": '列名 "x"\n',
    },
)
KNOWN_BYTES = (
    b'{"v":1,"seq":7,"time":1790000000123456789,"kind":"transfer.checked",'
    b'"key":"t-0001:transfer.checked","subject":"t-0001","agreement":"agreement-a",'
    b'"actor":"handler-1","data":{"flow":"monthly","note":"\xe5\x88\x97\xe5\x90\x8d '
    b'\\"x\\"\\n","rows":2,"sha256":"' + b"ab" * 32 + b'","witnesses_required":1}}'
)


def test_known_answer_bytes_and_leaf_hash() -> None:
    body = encode(7, KNOWN)
    assert body == KNOWN_BYTES
    # RFC 9162 §2.1.1 leaf hash of these bytes, pinned so the format can never drift silently.
    assert hashlib.sha256(b"\x00" + body).hexdigest() == (
        "a6ca6ab7cb50ed9f85f4e5f9436766911b915aef2c8c588cc07ae96d84b75717"
    )
    assert decode(body).as_dict() == {
        "seq": 7,
        "time_ns": KNOWN.time_ns,
        "kind": KNOWN.kind,
        "key": KNOWN.key,
        "subject": "t-0001",
        "agreement": "agreement-a",
        "actor": "handler-1",
        "data": dict(KNOWN.data),
    }


def test_none_is_the_empty_string_and_header_is_a_prefix() -> None:
    draft = Draft(key="k", kind="x.y", time_ns=0)
    body = encode(0, draft)
    assert (
        body == b'{"v":1,"seq":0,"time":0,"kind":"x.y","key":"k","subject":"",'
        b'"agreement":"","actor":"","data":{}}'
    )
    assert body.startswith(header(0, 0, "x.y", "k", "", "", ""))
    ev = decode(body)
    assert (ev.subject, ev.agreement, ev.actor) == (None, None, None)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"x": 1.5}, "floats"),
        ({"x": [1, {"y": 2**63}]}, "64 bits"),
        ({"x": -(2**63) - 1}, "64 bits"),
        ({1: "x"}, "keys must be strings"),
        ({"x": {1, 2}}, "cannot be stored"),
        ({"x": b"bytes"}, "cannot be stored"),
        ({"x": "\ud800"}, "not valid Unicode"),
    ],
)
def test_data_that_cannot_be_stored_exactly_is_refused(data: dict[Any, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_draft(Draft(key="k", kind="k", time_ns=1, data=data))


@pytest.mark.parametrize(
    "field, value",
    [
        ("key", ""),
        ("kind", ""),
        ("key", 'a"b'),
        ("subject", "a\\b"),
        ("agreement", "a\nb"),
        ("actor", "a\x7f"),
        ("actor", "\ud800"),
        ("subject", "x" * 513),
        ("actor", 5),
    ],
)
def test_header_fields_must_be_plain_text(field: str, value: Any) -> None:
    fields: dict[str, Any] = {"key": "k", "kind": "k", "time_ns": 1, field: value}
    with pytest.raises(ValueError, match=field):
        check_draft(Draft(**fields))


@pytest.mark.parametrize("time_ns", [-1, 2**63, True, 1.0])
def test_time_must_be_a_64_bit_integer(time_ns: Any) -> None:
    with pytest.raises(ValueError, match="time_ns"):
        check_draft(Draft(key="k", kind="k", time_ns=time_ns))


@pytest.mark.parametrize(
    "body",
    [
        KNOWN_BYTES.replace(b'"seq":7,', b'"seq": 7,'),
        KNOWN_BYTES.replace(b'"rows":2', b'"rows":2.0'),
        KNOWN_BYTES.replace(b'"v":1', b'"v":2'),
        KNOWN_BYTES.replace(b'{"flow":"monthly",', b'{"rows":3,"flow":"monthly",'),
        KNOWN_BYTES.replace(b'"flow":"monthly","note"', b'"note":"a","flow":"monthly","note"'),
        KNOWN_BYTES.replace(b'"kind":"transfer.checked","key"', b'"key"'),
        KNOWN_BYTES.replace("列".encode(), b"\\u5217"),
        KNOWN_BYTES[:-1],
        b"\xff" + KNOWN_BYTES[1:],
        b"[]",
    ],
)
def test_decode_insists_on_canonical_bytes(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode(body)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
_plain = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\\x7f'), max_size=20
)


@given(
    seq=st.integers(0, 2**40),
    time_ns=st.integers(0, 2**63 - 1),
    kind=_plain.filter(bool),
    key=_plain.filter(bool),
    subject=_plain,
    agreement=_plain,
    actor=_plain,
    data=st.dictionaries(_text, _values, max_size=6),
)
def test_every_storable_draft_round_trips_exactly(
    seq: int,
    time_ns: int,
    kind: str,
    key: str,
    subject: str,
    agreement: str,
    actor: str,
    data: dict[str, Any],
) -> None:
    draft = Draft(
        key=key,
        kind=kind,
        time_ns=time_ns,
        subject=subject or None,
        agreement=agreement or None,
        actor=actor or None,
        data=data,
    )
    body = encode(seq, draft)
    for ev in (decode(body), parse(body)):
        assert (ev.seq, ev.time_ns, ev.kind, ev.key) == (seq, time_ns, kind, key)
        assert (ev.subject, ev.agreement, ev.actor) == (draft.subject, draft.agreement, draft.actor)
        assert json.dumps(ev.data, sort_keys=True) == json.dumps(data, sort_keys=True)
    assert body.startswith(header(seq, time_ns, kind, key, subject, agreement, actor))
