"""The tamper suite: attacks by someone with write access to the ledger file (sqlite3, guards
dropped). Each must be detected, naming the first bad event or the bad checkpoint."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from audit.checkpoints import Checkpoint, read_places, sign
from audit.errors import LedgerIntegrityError
from audit.ledger import Ledger
from audit.notes import NoteSigner, NoteVerifier
from audit.tiles import Frontier
from audit.verify import VerifyReport
from tests.audit.ledgers import (
    T0,
    attack,
    checkpoint,
    rewrite_from,
    signed_ledger,
    write_checkpoints,
)

SIZES = [300, 600, 700]


@pytest.fixture(scope="module")
def signer() -> NoteSigner:
    return NoteSigner.generate("tachiai-test-ledger")


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory, signer: NoteSigner) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("gateway")
    ledger, signed = signed_ledger(folder / "ledger.db", SIZES, signer)
    ledger.close()
    return folder / "ledger.db", write_checkpoints(folder / "checkpoints", signed, signer)


@pytest.fixture
def copy(original: tuple[Path, Path], tmp_path: Path) -> Path:
    src = sqlite3.connect(original[0])
    dst = sqlite3.connect(tmp_path / "copy.db")
    src.backup(dst)
    src.close()
    dst.close()
    return tmp_path / "copy.db"


def verify(
    path: Path, places: list[Path] | None = None, key: NoteVerifier | None = None
) -> VerifyReport:
    notes, _ = read_places(places or [])
    ledger = Ledger.open(path, snapshot=True)
    try:
        return ledger.verify(checkpoints=notes, key=key)
    finally:
        ledger.close()


def bad(
    path: Path, places: list[Path] | None = None, key: NoteVerifier | None = None
) -> LedgerIntegrityError:
    with pytest.raises(LedgerIntegrityError) as caught:
        verify(path, places, key)
    return caught.value


def test_untouched_copy_verifies_against_every_checkpoint(
    copy: Path, original: tuple[Path, Path], signer: NoteSigner
) -> None:
    report = verify(copy, [original[1]], signer.verifier())
    assert report.size == 700
    assert {c.checkpoint.size for c in report.signed} == set(SIZES)
    assert report.latest_signed is not None and report.latest_signed.checkpoint.size == 700


def test_changed_event_is_named(copy: Path) -> None:
    attack(
        copy,
        "UPDATE ledger_events SET body = CAST(replace(CAST(body AS TEXT), "
        "'handler-1', 'handler-2') AS BLOB) WHERE seq = 82",
    )
    err = bad(copy)
    assert err.seq == 82 and "event 82 was changed" in str(err)


def test_changed_index_column_is_named(copy: Path) -> None:
    attack(copy, "UPDATE ledger_events SET agreement = 'agreement-b' WHERE seq = 50")
    err = bad(copy)
    assert err.seq == 50 and "indexed columns" in str(err)


def test_changed_time_precision_is_named(copy: Path) -> None:
    attack(copy, "UPDATE ledger_events SET time_ns = time_ns / 1000 * 1000 + 1 WHERE seq = 7")
    assert bad(copy).seq == 7


def test_deleted_middle_event_is_named(copy: Path) -> None:
    attack(copy, "DELETE FROM ledger_events WHERE seq = 400")
    err = bad(copy)
    assert err.seq == 400 and "event 400 is missing" in str(err)


def test_reordered_events_are_named(copy: Path) -> None:
    db = sqlite3.connect(copy)
    rows = {r[0]: r[1:] for r in db.execute("SELECT * FROM ledger_events WHERE seq IN (10, 11)")}
    db.close()
    attack(copy, "DELETE FROM ledger_events WHERE seq IN (10, 11)")
    db = sqlite3.connect(copy)
    db.execute("INSERT INTO ledger_events VALUES (10, ?, ?, ?, ?, ?, ?, ?, ?)", rows[11])
    db.execute("INSERT INTO ledger_events VALUES (11, ?, ?, ?, ?, ?, ?, ?, ?)", rows[10])
    db.commit()
    db.close()
    err = bad(copy)
    assert err.seq == 10 and "out of place" in str(err)


def test_naive_tail_cut_is_found_by_the_tree_heads(copy: Path) -> None:
    attack(copy, "DELETE FROM ledger_events WHERE seq >= 690")
    err = bad(copy)
    assert err.seq == 690 and "cut" in str(err)


def test_thorough_tail_cut_is_found_only_by_an_external_checkpoint(
    copy: Path, original: tuple[Path, Path], signer: NoteSigner
) -> None:
    # Everything inside the database agrees after this; that is why checkpoints live outside.
    attack(
        copy,
        "DELETE FROM ledger_events WHERE seq >= 650",
        "DELETE FROM ledger_heads WHERE size > 600",
        "DELETE FROM ledger_nodes",
        "DELETE FROM ledger_checkpoints WHERE size > 650",
    )
    rebuild_nodes(copy)
    assert verify(copy).size == 650
    err = bad(copy, [original[1]], signer.verifier())
    assert err.seq == 650 and "cut" in str(err) and "size 700" in str(err)


def rebuild_nodes(path: Path) -> None:
    db = sqlite3.connect(path)
    leaves = [r[0] for r in db.execute("SELECT leaf_hash FROM ledger_events ORDER BY seq")]
    db.executemany("INSERT INTO ledger_nodes VALUES (?, ?, ?)", Frontier().extend(leaves))
    db.commit()
    db.close()


def test_full_rechain_without_the_key_is_caught_by_external_checkpoints(
    copy: Path, original: tuple[Path, Path], signer: NoteSigner
) -> None:
    rewrite_from(copy, 450, {"rows": 0})
    assert verify(copy).size == 700  # consistent in itself: only signatures can tell
    err = bad(copy, [original[1]], signer.verifier())
    assert "size 600" in str(err) and "300..599" in str(err) and err.seq == 300


def test_rechain_resigned_with_another_key_is_refused(
    copy: Path, original: tuple[Path, Path], signer: NoteSigner
) -> None:
    rewrite_from(copy, 450, {"rows": 0})
    forger = NoteSigner.generate(signer.name)  # the same name, not the same key
    ledger = Ledger.open(copy)
    ledger.add_checkpoint(checkpoint(ledger, forger, 700))
    ledger.close()
    err = bad(copy, [original[1]], signer.verifier())
    assert "not signed by the trusted key" in str(err) and "the ledger" in str(err)


def test_checkpoint_signed_by_another_key_is_named(
    copy: Path, original: tuple[Path, Path], signer: NoteSigner, tmp_path: Path
) -> None:
    forger = NoteSigner.generate(signer.name)
    ledger = Ledger.open(copy, snapshot=True)
    forged = checkpoint(ledger, forger, 700)
    ledger.close()
    (tmp_path / "forged.checkpoint").write_text(forged.note)
    err = bad(copy, [original[1], tmp_path / "forged.checkpoint"], signer.verifier())
    assert "forged.checkpoint" in str(err) and "not signed by the trusted key" in str(err)


def test_two_signed_roots_for_one_size_are_a_fork(
    copy: Path, original: tuple[Path, Path], signer: NoteSigner, tmp_path: Path
) -> None:
    ledger = Ledger.open(copy, snapshot=True)
    origin = ledger.origin
    ledger.close()
    assert origin is not None
    other = sign(Checkpoint(origin, 600, b"\x01" * 32, T0 + 5), signer)
    (tmp_path / "split.checkpoint").write_text(other.note)
    err = bad(copy, [original[1], tmp_path / "split.checkpoint"], signer.verifier())
    assert "forked" in str(err)


def test_checkpoint_of_another_log_is_refused(
    copy: Path, signer: NoteSigner, tmp_path: Path
) -> None:
    foreign = sign(Checkpoint("tachiai/ledger/ffffffffffffffff", 10, b"\x02" * 32, T0), signer)
    (tmp_path / "other.checkpoint").write_text(foreign.note)
    assert "another log" in str(bad(copy, [tmp_path / "other.checkpoint"], signer.verifier()))


def test_tampered_stored_node_is_named(copy: Path) -> None:
    attack(copy, "UPDATE ledger_nodes SET hash = zeroblob(32) WHERE level = 8 AND idx = 1")
    err = bad(copy)
    assert err.seq == 256 and "256..511" in str(err)


def test_tampered_tree_head_is_named(copy: Path) -> None:
    attack(copy, "UPDATE ledger_heads SET frontier = zeroblob(64) WHERE size = 600")
    assert "tree head recorded at size 600" in str(bad(copy))


def test_non_canonical_rewrite_is_found_by_the_deep_check(copy: Path) -> None:
    db = sqlite3.connect(copy)
    (body,) = db.execute("SELECT body FROM ledger_events WHERE seq = 699").fetchone()
    db.close()
    # Same fields, re-serialised with a space: a rewrite that keeps the header exact.
    rewrite = body.replace(b'"flow":"monthly"', b'"flow": "monthly"')
    attack(copy, "UPDATE ledger_events SET body = ? WHERE seq = 699", params=(rewrite,))
    with pytest.raises(LedgerIntegrityError) as caught:
        Ledger.open(copy, snapshot=True).verify(deep=True)
    assert caught.value.seq == 699
