"""Tampering with the ledger file as someone with write access to it would, after a real run:
`tachiai audit verify` must exit 1 and name the first bad event."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import GOOD_ROWS, Demo, csv_bytes

pytestmark = pytest.mark.slow


@pytest.fixture
def ledger_copy(demo: Demo, tmp_path: Path) -> Path:
    demo.start()
    demo.drop("a.csv", csv_bytes(GOOD_ROWS))
    (transfer,) = demo.wait_state("awaiting_approval")
    assert demo.cli("approve", str(transfer["id"]), "--key", str(demo.key("suzuki"))
                    ).returncode == 0
    demo.wait_state("delivered")
    assert demo.stop() == 0
    copy = tmp_path / "copy.db"
    src = sqlite3.connect(demo.ledger)
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    return copy


def _attack(path: Path, *sql: str) -> None:
    db = sqlite3.connect(path)
    for name, in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f"DROP TRIGGER {name}")
    for statement in sql:
        db.execute(statement)
    db.commit()
    db.close()


def _verify(demo: Demo, ledger: Path) -> tuple[int, str]:
    result = demo.cli("audit", "verify", "--ledger", str(ledger))
    return result.returncode, result.stdout + result.stderr


def test_untouched_copy_verifies(demo: Demo, ledger_copy: Path) -> None:
    code, out = _verify(demo, ledger_copy)
    assert code == 0, out
    assert "intact" in out


def test_update_and_delete_are_refused_by_the_database(ledger_copy: Path) -> None:
    db = sqlite3.connect(ledger_copy)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE ledger_events SET kind = 'x' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM ledger_events WHERE seq = 1")
    db.close()


def test_edited_event_is_named(demo: Demo, ledger_copy: Path) -> None:
    _attack(ledger_copy, "UPDATE ledger_events SET body = "
            "CAST(replace(CAST(body AS TEXT), 'suzuki', 'tanaka') AS BLOB) WHERE seq = 3")
    code, out = _verify(demo, ledger_copy)
    assert code == 1 and "event 3" in out, out


def test_deleted_middle_event_is_named(demo: Demo, ledger_copy: Path) -> None:
    _attack(ledger_copy, "DELETE FROM ledger_events WHERE seq = 4")
    code, out = _verify(demo, ledger_copy)
    assert code == 1 and "event 4" in out, out


def test_reordered_events_are_named(demo: Demo, ledger_copy: Path) -> None:
    db = sqlite3.connect(ledger_copy)
    rows = {s: (b, h) for s, b, h in db.execute(
        "SELECT seq, body, leaf_hash FROM ledger_events WHERE seq IN (2, 3)")}
    db.close()
    _attack(ledger_copy)
    db = sqlite3.connect(ledger_copy)
    for seq, other in ((2, 3), (3, 2)):
        body, leaf = rows[other]
        db.execute("UPDATE ledger_events SET body = ?, leaf_hash = ? WHERE seq = ?",
                   (body, leaf, seq))
    db.commit()
    db.close()
    code, out = _verify(demo, ledger_copy)
    assert code == 1 and "event 2" in out, out


def test_cut_tail_is_found_against_the_recorded_heads(demo: Demo, ledger_copy: Path) -> None:
    db = sqlite3.connect(ledger_copy)
    (size,) = db.execute("SELECT COUNT(*) FROM ledger_events").fetchone()
    db.close()
    _attack(ledger_copy, f"DELETE FROM ledger_events WHERE seq = {size - 1}")
    code, out = _verify(demo, ledger_copy)
    assert code == 1 and "cut" in out, out


def test_verify_never_writes_the_copy(demo: Demo, ledger_copy: Path) -> None:
    before = ledger_copy.read_bytes()
    assert _verify(demo, ledger_copy)[0] == 0
    assert ledger_copy.read_bytes() == before
