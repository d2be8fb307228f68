"""The delivery manifest (送付票): canonical bytes, a strict parser, and the check of the witnessed
statement against the recipient's own registry. Flip any byte, reorder, add or drop a key, and
the manifest is refused with a rule; sign with a key that is no designated witness, and the
approval counts for nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.policyfiles import load_agreements
from gateway.exchange.manifest import (
    FORMAT,
    Manifest,
    ManifestError,
    SignedApproval,
    manifest_name,
    statement_problem,
    verify,
)
from gateway.identity import sshsig
from gateway.identity.sshkeys import generate_ed25519, load_private_key
from policies.handlers import Handler, Registry

AGREEMENT = "isa-nhi-status-loss"
TODAY = dt.date(2026, 11, 22)
TRANSFER = "t-0123456789ab"
SHA = "ab" * 32


def _statement(**over: str) -> str:
    fields = {
        "transfer": TRANSFER,
        "agreement": AGREEMENT,
        "flow": "monthly",
        "provider": "isa",
        "recipient": "nhi-central",
        "sender": "sato",
        "file-name": "status-change-2026-10.csv",
        "size": "222",
        "sha256": SHA,
        **over,
    }
    return "tachiai approval statement v1\n" + "".join(f"{k}: {v}\n" for k, v in fields.items())


def _manifest(**over: Any) -> Manifest:
    base = Manifest(
        transfer=TRANSFER,
        agreement=AGREEMENT,
        flow="monthly",
        provider="isa",
        recipient="nhi-central",
        file_name="status-change-2026-10.csv",
        delivered_name=f"status-change-2026-10.csv.{TRANSFER}.zip",
        size=222,
        sha256=SHA,
        sealed_size=500,
        sealed_sha256="cd" * 32,
        profile="zip-aes256",
        sender="sato",
        statement=_statement(),
    )
    return dataclasses.replace(base, **over)


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    return {
        name: folder / name
        for name in ("sato", "suzuki", "tanaka", "takahashi", "other")
        if generate_ed25519(folder / name, name)
    }


@pytest.fixture(scope="module")
def registry(people: dict[str, Path]) -> Registry:
    roles = {
        "sato": ("isa", "send"),
        "suzuki": ("isa", "witness"),
        "tanaka": ("isa", "witness"),
        "takahashi": ("nhi-central", "receive"),
    }
    return Registry(
        tuple(
            Handler(
                name,
                party,
                frozenset({role}),
                " ".join((people[name].with_suffix(".pub").read_text().split())[:2]),
                frozenset({AGREEMENT}),
                dt.date(2023, 3, 29),
            )
            for name, (party, role) in roles.items()
        )
    )


@pytest.fixture(scope="module")
def agreements() -> dict[str, object]:
    return dict(load_agreements([AGREEMENT], Path.cwd()))


def _signed(m: Manifest, people: dict[str, Path], *names: str) -> Manifest:
    return dataclasses.replace(
        m,
        approvals=tuple(
            SignedApproval(
                n,
                "SHA256:-",
                sshsig.sign(m.statement.encode(), load_private_key(people[n]), "tachiai-approval"),
            )
            for n in names
        ),
    )


def test_the_canonical_bytes_round_trip_exactly() -> None:
    m = _manifest(replies_to="t-aaaaaaaaaaaa")
    raw = m.to_bytes()
    assert Manifest.from_bytes(raw) == m
    assert raw.startswith(b'{"agreement":"isa-nhi-status-loss","approvals":[],')  # sorted keys
    assert b'", "' not in raw and b'": ' not in raw  # no spaces between tokens
    assert f'"format":"{FORMAT}"'.encode() in raw
    assert manifest_name("a.zip") == "a.zip.manifest.json"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b"null",
        b'{"format":"tachiai-manifest/1"}',
        b'{"a":1,"a":2}',
    ],
    ids=["empty", "list", "null", "missing-keys", "duplicate-key"],
)
def test_what_is_not_a_manifest_is_refused(raw: bytes) -> None:
    with pytest.raises(ManifestError):
        Manifest.from_bytes(raw)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"size":222', b'"size":-1'),
        (b'"size":222', b'"size":true'),
        (b'"size":222', b'"size":222.0'),
        (b'"transfer":"' + TRANSFER.encode(), b'"transfer":"t-XYZ'),
        (b'"sha256":"' + SHA.encode(), b'"sha256":"' + SHA.upper().encode()),
        (b'"file_name":"status', b'"file_name":"\\u0007status'),
        (b'"sender":"sato"', b'"sender":"sa\\nto"'),
        (b'"replies_to":null', b'"replies_to":"x"'),
    ],
)
def test_each_field_is_checked_for_its_type(old: bytes, new: bytes) -> None:
    raw = _manifest().to_bytes()
    assert old in raw
    with pytest.raises(ManifestError) as refused:
        Manifest.from_bytes(raw.replace(old, new, 1))
    assert refused.value.rule == "manifest.malformed"


def test_a_manifest_in_another_encoding_of_the_same_json_is_refused() -> None:
    raw = _manifest().to_bytes()
    with pytest.raises(ManifestError, match="canonical"):
        Manifest.from_bytes(raw.replace(b'"flow":"monthly"', b'"flow":"month\\u006cy"'))
    with pytest.raises(ManifestError, match="canonical"):
        Manifest.from_bytes(raw + b"\n")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_flipped_byte_is_refused_or_changes_nothing_silently(data: st.DataObject) -> None:
    raw = _manifest().to_bytes()
    at = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(raw)
    flipped[at] ^= 1 << bit
    try:
        m = Manifest.from_bytes(bytes(flipped))
    except ManifestError:
        return
    # Parsed: then it is canonical and differs from the original in exactly what was flipped,
    # so the statement check (or the hash checks) sees the difference.
    assert m != _manifest() and m.to_bytes() == bytes(flipped)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise_anything_but_a_manifest_error(raw: bytes) -> None:
    with contextlib.suppress(ManifestError):
        Manifest.from_bytes(raw)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("size", 223),
        ("sha256", "ef" * 32),
        ("file_name", "other.csv"),
        ("sender", "tanaka"),
        ("recipient", "nhi-federations"),
        ("transfer", "t-0123456789ac"),
        ("replies_to", "t-aaaaaaaaaaaa"),
        ("corrects", "t-aaaaaaaaaaaa"),
    ],
)
def test_the_statement_must_say_exactly_what_the_manifest_says(field: str, value: object) -> None:
    assert statement_problem(_manifest()) is None
    problem = statement_problem(_manifest(**{field: value}))
    assert problem is not None and "disagree" in problem


def test_a_statement_with_repeated_or_extra_lines_is_refused() -> None:
    assert statement_problem(_manifest(statement=_statement() + "size: 222\n"))
    assert statement_problem(_manifest(statement=_statement() + "note: hi\n"))
    assert statement_problem(_manifest(statement=_statement().replace("v1", "v2")))


def test_enough_designated_witnesses_of_the_provider_verify(
    people: dict[str, Path], registry: Registry, agreements: dict[str, object]
) -> None:
    m = _signed(_manifest(), people, "suzuki")
    verdict = verify(m, agreements, registry, "nhi-central", TODAY)  # type: ignore[arg-type]
    assert verdict.reasons == () and verdict.witnesses == ("suzuki",)


@pytest.mark.parametrize(
    "names",
    [(), ("sato",), ("takahashi",), ("other",)],
    ids=["none", "the-sender", "a-receiver", "unregistered"],
)
def test_no_approval_by_anyone_but_a_designated_witness_counts(
    people: dict[str, Path],
    registry: Registry,
    agreements: dict[str, object],
    names: tuple[str, ...],
) -> None:
    m = _signed(_manifest(), people, *names)
    verdict = verify(m, agreements, registry, "nhi-central", TODAY)  # type: ignore[arg-type]
    assert [r.rule for r in verdict.reasons] == ["inbound.witnesses"]


def test_a_signature_under_another_namespace_or_over_other_bytes_counts_for_nothing(
    people: dict[str, Path], registry: Registry, agreements: dict[str, object]
) -> None:
    m = _manifest()
    key = load_private_key(people["suzuki"])
    wrong_ns = sshsig.sign(m.statement.encode(), key, "tachiai-rejection")
    other = sshsig.sign(_statement(size="1").encode(), key, "tachiai-approval")
    m = dataclasses.replace(
        m, approvals=(SignedApproval("suzuki", "-", wrong_ns), SignedApproval("suzuki", "-", other))
    )
    verdict = verify(m, agreements, registry, "nhi-central", TODAY)  # type: ignore[arg-type]
    assert [r.rule for r in verdict.reasons] == ["inbound.witnesses"]
    assert len(verdict.notes) == 2


def test_a_designation_that_ended_does_not_count(
    people: dict[str, Path], registry: Registry, agreements: dict[str, object]
) -> None:
    ended = Registry(
        tuple(
            dataclasses.replace(h, designated_until=dt.date(2026, 1, 1))
            if h.name == "suzuki"
            else h
            for h in registry.handlers
        )
    )
    m = _signed(_manifest(), people, "suzuki")
    verdict = verify(m, agreements, ended, "nhi-central", TODAY)  # type: ignore[arg-type]
    assert [r.rule for r in verdict.reasons] == ["inbound.witnesses"]


@pytest.mark.parametrize(
    ("changes", "party", "rule"),
    [
        ({"agreement": "no-such"}, "nhi-central", "inbound.agreement-unknown"),
        ({"flow": "weekly"}, "nhi-central", "inbound.flow-unknown"),
        ({"provider": "mhlw-insurance"}, "nhi-central", "inbound.parties"),
        ({}, "nhi-federations", "inbound.not-ours"),
        ({"profile": "age"}, "nhi-central", "inbound.profile"),
        ({"delivered_name": "status-change-2026-10.csv.zip"}, "nhi-central", "inbound.name"),
        ({"size": 1}, "nhi-central", "manifest.statement"),
    ],
)
def test_the_manifest_must_fit_our_agreement_and_party(
    people: dict[str, Path],
    registry: Registry,
    agreements: dict[str, object],
    changes: dict[str, object],
    party: str,
    rule: str,
) -> None:
    m = _signed(_manifest(**changes), people, "suzuki")
    verdict = verify(m, agreements, registry, party, TODAY)  # type: ignore[arg-type]
    assert [r.rule for r in verdict.reasons] == [rule]


def test_the_providers_duplicate_notice_is_accepted_in_form_only() -> None:
    # outbound.duplicates adds it to a statement when the bytes were delivered before.
    assert statement_problem(_manifest(statement=_statement() + "duplicate-of: t-0123456789ab\n"
                                       )) is None
    assert statement_problem(_manifest(statement=_statement() + "duplicate-of: anything\n"))
