"""`tachiai audit …` as an auditor runs it: on a copy, with no configuration, never writing it."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from audit.notes import NoteSigner
from tests.audit.ledgers import attack, signed_ledger, write_checkpoints
from tests.conftest import tachiai_command


@pytest.fixture(scope="module")
def auditor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What an auditor receives: a copy of the ledger, the checkpoint folder, ledger.pub."""
    gateway = tmp_path_factory.mktemp("gateway")
    signer = NoteSigner.generate("tachiai-test-ledger")
    ledger, signed = signed_ledger(gateway / "ledger.db", [300, 600, 700], signer)
    ledger.close()
    desk = tmp_path_factory.mktemp("auditor")
    write_checkpoints(desk / "checkpoints", signed[:-1], signer)  # the latest is only inside
    src, dst = sqlite3.connect(gateway / "ledger.db"), sqlite3.connect(desk / "ledger.db")
    src.backup(dst)
    src.close()
    dst.close()
    (desk / "ledger.pub").write_text(signer.verifier().to_text() + "\n")
    return desk


def run(desk: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TACHIAI_CONFIG"}
    return subprocess.run(
        [*tachiai_command(), "audit", *args],
        cwd=desk,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


TRUST = ("--ledger", "ledger.db", "--checkpoint", "checkpoints", "--public-key", "ledger.pub")


def test_the_auditors_walk_through_never_writes_the_copy(auditor: Path, tmp_path: Path) -> None:
    before = digests(auditor)
    r = run(auditor, "verify", *TRUST)
    assert r.returncode == 0, r.stderr
    assert "intact: 700 events" in r.stdout and "signed: 3 checkpoint(s)" in r.stdout
    r = run(auditor, "prove", "123", *TRUST)
    assert r.returncode == 0, r.stderr
    proof = json.loads(r.stdout)
    assert (proof["leaf_index"], proof["tree_size"]) == (123, 700)
    (tmp_path / "proof.json").write_text(r.stdout)
    r = run(auditor, "check-proof", str(tmp_path / "proof.json"), "--public-key", "ledger.pub")
    assert r.returncode == 0 and "the proof holds: event 123" in r.stdout, r.stderr
    r = run(auditor, "query", "--ledger", "ledger.db", "--person", "handler-1", "--format", "json")
    assert r.returncode == 0 and {e["actor"] for e in json.loads(r.stdout)} == {"handler-1"}
    r = run(
        auditor, "query", "--ledger", "ledger.db", "--kind", "transfer.checked", "--format", "csv"
    )
    lines = r.stdout.removeprefix("\ufeff").splitlines()  # CSV exports carry a UTF-8 BOM
    assert lines[0].startswith("seq,time,kind") and len(lines) == 1 + len(range(2, 700, 8))
    r = run(
        auditor,
        "report",
        "--agreement",
        "agreement-a",
        "--period",
        "2026-09",
        "--format",
        "html",
        *TRUST,
    )
    assert r.returncode == 0 and "取扱状況報告" in r.stdout and "<table>" in r.stdout, r.stderr
    assert digests(auditor) == before


def test_without_a_key_verify_warns_and_with_the_folders_key_it_says_whose(auditor: Path) -> None:
    r = run(auditor, "verify", "--ledger", "ledger.db")
    assert r.returncode == 0 and "WARNING: no trusted public key" in r.stdout
    r = run(auditor, "verify", "--ledger", "ledger.db", "--checkpoint", "checkpoints")
    assert r.returncode == 0 and "using the public key found beside" in r.stderr


def test_a_tampered_copy_fails_and_names_the_event(auditor: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ledger.db"
    copy.write_bytes((auditor / "ledger.db").read_bytes())
    attack(
        copy,
        "UPDATE ledger_events SET body = CAST(replace(CAST(body AS TEXT), "
        "'handler-1', 'handler-0') AS BLOB) WHERE seq = 82",
    )
    r = run(auditor, "verify", "--ledger", str(copy))
    assert r.returncode == 1 and "NOT intact" in r.stderr and "event 82" in r.stderr


def test_a_flipped_bit_in_a_proof_fails(auditor: Path, tmp_path: Path) -> None:
    proof = json.loads(run(auditor, "prove", "5", *TRUST).stdout)
    proof["inclusion_path"][2] = ("0" if proof["inclusion_path"][2][0] != "0" else "1") + proof[
        "inclusion_path"
    ][2][1:]
    (tmp_path / "bad.json").write_text(json.dumps(proof))
    r = run(auditor, "check-proof", str(tmp_path / "bad.json"), "--public-key", "ledger.pub")
    assert r.returncode == 1 and "does NOT hold" in r.stderr


def test_usage_errors_are_plain(auditor: Path) -> None:
    assert (
        run(
            auditor, "report", "--ledger", "ledger.db", "--agreement", "a", "--period", "2026-Q9"
        ).returncode
        == 2
    )
    assert run(auditor, "query", "--ledger", "ledger.db", "--sha256", "xyz").returncode == 2
    assert run(auditor, "verify", "--ledger", "missing.db").returncode == 74
    r = run(auditor, "check-proof", "nope.json", "--public-key", "ledger.pub")
    assert r.returncode == 65
