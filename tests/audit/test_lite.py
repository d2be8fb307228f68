"""The short commands' ledger (audit.lite, the sqlite3 module alone) against `audit.ledger.Ledger`
(SQLAlchemy): the same bytes appended, the same reads, proofs and verification, the same errors
on a tampered ledger. The two share their statements and staging, but are opened apart; a
difference in what either writes or reads must fail here.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from audit import proofs
from audit.errors import LedgerIntegrityError, LedgerStorageError
from audit.ledger import Ledger
from audit.lite import LiteLedger
from audit.notes import NoteSigner
from tests.audit.ledgers import attack, checkpoint, transfer_events

TABLES = ("ledger_events", "ledger_nodes", "ledger_heads")


def _dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(path)
    try:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}
    finally:
        db.close()


def _lite(path: Path, *, read_only: bool = False) -> LiteLedger:
    found = LiteLedger.open(path, read_only=read_only)
    assert found is not None
    return found


def test_it_opens_only_a_ledger_that_exists(tmp_path: Path) -> None:
    assert LiteLedger.open(tmp_path / "none.db") is None
    sqlite3.connect(tmp_path / "empty.db").close()
    assert LiteLedger.open(tmp_path / "empty.db") is None  # no tables: the Ledger creates them
    Ledger.open(tmp_path / "ledger.db").close()
    _lite(tmp_path / "ledger.db").close()


def test_appends_write_the_same_rows_as_the_ledger(tmp_path: Path) -> None:
    drafts = transfer_events(300)
    paths = {name: tmp_path / f"{name}.db" for name in ("full", "lite")}
    for path in paths.values():
        Ledger.open(path).close()
    full = Ledger.open(paths["full"])
    lite = _lite(paths["lite"])
    # Batches of uneven sizes cross tile boundaries; a repeated key keeps its seq.
    for start, stop in ((0, 1), (1, 17), (17, 256), (256, 300), (250, 260)):
        assert lite.append(drafts[start:stop]) == full.append(drafts[start:stop])
    assert lite.size() == full.size() == 300
    full.close()
    lite.close()
    assert _dump(paths["lite"]) == _dump(paths["full"])
    assert all(_dump(paths["full"])[t] for t in TABLES)


def test_reads_proofs_and_verification_agree(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    full = Ledger.open(path)
    full.append(transfer_events(700))
    signer = NoteSigner.generate("tachiai-test-ledger")
    signed = checkpoint(full, signer, 700)
    full.add_checkpoint(signed)
    lite = _lite(path, read_only=True)

    assert lite.origin == full.origin and lite.size() == full.size()
    assert list(lite.events(5, 40)) == list(full.events(5, 40))
    assert list(lite.events(690)) == list(full.events(690))
    assert lite.event(123) == full.event(123)
    assert lite.checkpoints() == full.checkpoints()
    with lite.reader() as a, full.reader() as b:
        for size in (1, 255, 256, 257, 700):
            assert a.root_at(size) == b.root_at(size)
            assert a.head_frontier(size) == b.head_frontier(size)
        assert list(a.leaf_hashes(10, 20)) == list(b.leaf_hashes(10, 20))
    for seq in (0, 255, 699):
        assert proofs.prove(lite, seq, signed) == proofs.prove(full, seq, signed)  # type: ignore[arg-type]
    with pytest.raises(LedgerIntegrityError, match="event 700 is not in the ledger"):
        lite.event(700)

    a_report = lite.verify(checkpoints=[], key=signer.verifier(), deep=True)
    b_report = full.verify(checkpoints=[], key=signer.verifier(), deep=True)
    assert (a_report.size, a_report.root, a_report.heads, a_report.signed) == (
        b_report.size, b_report.root, b_report.heads, b_report.signed)
    assert a_report.size == 700 and len(a_report.signed) == 1
    with pytest.raises(LedgerStorageError, match="read-only"):
        lite.append(transfer_events(1, 700))
    lite.close()
    full.close()


@pytest.mark.parametrize("tamper", [
    "UPDATE ledger_events SET body = CAST(replace(CAST(body AS TEXT), 'handler-1', "
    "'handler-2') AS BLOB) WHERE seq = 82",
    "UPDATE ledger_events SET agreement = 'agreement-b' WHERE seq = 50",
    "DELETE FROM ledger_events WHERE seq = 400",
])
def test_a_tampered_ledger_fails_alike(tmp_path: Path, tamper: str) -> None:
    path = tmp_path / "ledger.db"
    full = Ledger.open(path)
    full.append(transfer_events(500))
    full.close()
    attack(path, tamper)
    errors = []
    for ledger in (Ledger.open(path, read_only=True), _lite(path, read_only=True)):
        with pytest.raises(LedgerIntegrityError) as caught:
            ledger.verify()
        errors.append((caught.value.seq, str(caught.value)))
        ledger.close()
    assert errors[0] == errors[1]
