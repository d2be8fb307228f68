"""Inclusion proofs: every event provable against every checkpoint; every flipped bit caught."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from audit.checkpoints import SignedCheckpoint
from audit.errors import LedgerIntegrityError
from audit.ledger import Ledger
from audit.notes import NoteSigner
from audit.proofs import InclusionProof, ProofError, check, load, prove
from tests.audit.ledgers import attack, signed_ledger

Setup = tuple[Ledger, list[SignedCheckpoint], NoteSigner]
RFC_9162_FIELDS = {"leaf_index", "tree_size", "leaf_hash", "inclusion_path", "root_hash"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    signer = NoteSigner.generate("tachiai-test-ledger")
    ledger, signed = signed_ledger(
        tmp_path_factory.mktemp("p") / "l.db", [1, 2, 3, 257, 700], signer
    )
    return ledger, signed, signer


def test_every_event_is_provable_against_every_checkpoint_that_covers_it(setup: Setup) -> None:
    ledger, signed, signer = setup
    for cp in signed:
        for seq in range(0, cp.checkpoint.size, 1 if cp.checkpoint.size < 300 else 7):
            proof = prove(ledger, seq, cp)
            checked = check(load(json.dumps(proof.to_json())), signer.verifier())
            assert checked.event.seq == seq
            assert checked.checkpoint.checkpoint == cp.checkpoint


def test_proof_json_uses_rfc_9162_terms(setup: Setup) -> None:
    ledger, signed, _ = setup
    data = prove(ledger, 5, signed[-1]).to_json()
    assert set(data) >= RFC_9162_FIELDS
    assert (data["leaf_index"], data["tree_size"]) == (5, 700)
    assert all(len(h) == 64 for h in data["inclusion_path"])
    assert data["checkpoint"] == signed[-1].note


def test_every_flipped_bit_is_caught(setup: Setup) -> None:
    ledger, signed, signer = setup
    good = prove(ledger, 300, signed[-1])
    fields = {
        "leaf_hash": good.leaf_hash,
        "root_hash": good.root_hash,
        **{f"path{i}": h for i, h in enumerate(good.inclusion_path)},
    }
    for name, value in fields.items():
        for bit in range(0, 256, 5):
            flipped = bytearray(value)
            flipped[bit // 8] ^= 1 << (bit % 8)
            with pytest.raises(ProofError):
                check(_replace(good, name, bytes(flipped)), signer.verifier())
    for i in range(0, len(good.event), 3):
        event = bytearray(good.event)
        event[i] ^= 0x01
        with pytest.raises(ProofError):
            check(_replace(good, "event", bytes(event)), signer.verifier())
    note = good.checkpoint
    for i in range(len(note)):
        if note[i] in "\n—":
            continue
        mangled = note[:i] + chr(ord(note[i]) ^ 1) + note[i + 1 :]
        with pytest.raises(ProofError):
            check(_replace(good, "checkpoint", mangled), signer.verifier())
    for index, size in (
        (good.leaf_index + 1, good.tree_size),
        (good.leaf_index, good.tree_size - 1),
    ):
        moved = InclusionProof(
            index,
            size,
            good.leaf_hash,
            good.inclusion_path,
            good.root_hash,
            good.event,
            good.checkpoint,
        )
        with pytest.raises(ProofError):
            check(moved, signer.verifier())


def _replace(proof: InclusionProof, name: str, value: object) -> InclusionProof:
    d: dict[str, Any] = {
        "leaf_index": proof.leaf_index,
        "tree_size": proof.tree_size,
        "leaf_hash": proof.leaf_hash,
        "inclusion_path": list(proof.inclusion_path),
        "root_hash": proof.root_hash,
        "event": proof.event,
        "checkpoint": proof.checkpoint,
    }
    if name.startswith("path"):
        d["inclusion_path"][int(name[4:])] = value
    else:
        d[name] = value
    d["inclusion_path"] = tuple(d["inclusion_path"])
    return InclusionProof(**d)


def test_another_key_does_not_vouch_for_a_proof(setup: Setup) -> None:
    ledger, signed, _ = setup
    with pytest.raises(ProofError, match="trusted key"):
        check(prove(ledger, 1, signed[-1]), NoteSigner.generate("tachiai-test-ledger").verifier())


@pytest.mark.parametrize("text", ["[]", "{}", '{"format": "tachiai-inclusion-proof/1"}', "x"])
def test_malformed_proof_files_are_refused(text: str) -> None:
    with pytest.raises(ProofError):
        load(text)


def test_an_event_outside_the_checkpoint_cannot_be_proven(setup: Setup) -> None:
    ledger, signed, _ = setup
    with pytest.raises(ValueError, match="does not cover"):
        prove(ledger, 5, signed[2])


def test_a_rewritten_ledger_refuses_to_prove(tmp_path: Path) -> None:
    signer = NoteSigner.generate("k")
    ledger, signed = signed_ledger(tmp_path / "l.db", [20], signer)
    ledger.close()
    attack(tmp_path / "l.db", "UPDATE ledger_events SET leaf_hash = zeroblob(32) WHERE seq = 4")
    with pytest.raises(LedgerIntegrityError):
        prove(Ledger.open(tmp_path / "l.db", snapshot=True), 5, signed[0])
