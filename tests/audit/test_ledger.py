"""Appending and reading: order, idempotency, group commit, append-only guards, read-only copies."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from audit.database import make_engine, sqlite_url
from audit.errors import LedgerStorageError
from audit.events import Draft
from audit.ledger import Ledger
from audit.merkle import root_hash
from tests.audit.ledgers import transfer_events


def file_digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_appends_are_numbered_in_order_and_idempotent_by_key(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "l.db")
    drafts = transfer_events(20)
    assert ledger.append(drafts[:12]) == list(range(12))
    # A retry after a crash sends some drafts again: they keep their seq, the rest are added.
    assert ledger.append(drafts[8:20]) == list(range(8, 20))
    assert ledger.append([drafts[3], drafts[3]]) == [3, 3]
    assert ledger.append([]) == []
    assert ledger.size() == 20
    assert [e.key for e in ledger.events()] == [d.key for d in drafts]
    assert [e.seq for e in ledger.events(5, 7)] == [5, 6]
    report = ledger.verify()
    leaves = [hashlib.sha256(b"\x00" + e.body).digest() for e in ledger.events()]
    assert (report.size, report.root) == (20, root_hash(leaves))


def test_a_bad_draft_appends_nothing(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "l.db")
    with pytest.raises(ValueError, match="floats"):
        ledger.append([*transfer_events(2), Draft(key="x", kind="x", time_ns=1, data={"f": 0.5})])
    assert ledger.size() == 0


def test_concurrent_threads_share_commits_without_gaps(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "l.db")
    drafts = transfer_events(320)
    errors: list[BaseException] = []
    given: dict[str, int] = {}

    def writer(k: int) -> None:
        try:
            for d in drafts[k::16]:
                (given[d.key],) = ledger.append([d])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert ledger.verify().size == 320
    assert {e.key: e.seq for e in ledger.events()} == given
    commits = (
        sqlite3.connect(tmp_path / "l.db")
        .execute("SELECT COUNT(*) FROM ledger_heads")
        .fetchone()[0]
    )
    assert commits < 320  # group commit: several appends shared one transaction


def test_the_database_refuses_update_and_delete_on_every_table(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "l.db")
    ledger.append(transfer_events(300))
    db = sqlite3.connect(tmp_path / "l.db")
    for table, column in (
        ("ledger_events", "kind"),
        ("ledger_nodes", "hash"),
        ("ledger_heads", "time_ns"),
        ("ledger_meta", "value"),
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(f"UPDATE {table} SET {column} = NULL")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(f"DELETE FROM {table}")
    db.close()


def test_origin_is_made_once_and_kept(tmp_path: Path) -> None:
    first = Ledger.open(tmp_path / "l.db").origin
    assert first is not None and first.startswith("tachiai/ledger/")
    assert Ledger.open(tmp_path / "l.db").origin == first
    assert Ledger.open(tmp_path / "l.db", read_only=True).origin == first


def test_a_copy_without_wal_files_is_read_and_never_written(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "live.db")
    ledger.append(transfer_events(50))
    ledger.close()
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(tmp_path / "live.db", copy / "ledger.db")  # the file alone: no -wal, no -shm
    before = file_digests(copy)
    os.chmod(copy, 0o555)  # a read-only mount, as an auditor's copy should be
    try:
        snap = Ledger.open(copy / "ledger.db", snapshot=True)
        assert snap.verify().size == 50
        assert len(list(snap.events())) == 50
        snap.close()
    finally:
        os.chmod(copy, 0o755)
    assert file_digests(copy) == before


def test_a_copy_with_a_wal_file_is_read_without_touching_it(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    ledger = Ledger.open(live)
    ledger.append(transfer_events(40))
    holder = sqlite3.connect(live)  # keeps the WAL from being folded in at close
    holder.execute("PRAGMA wal_autocheckpoint = 0")
    ledger.append(transfer_events(30, 40))
    copy = tmp_path / "copy"
    copy.mkdir()
    for suffix in ("", "-wal"):
        shutil.copy(f"{live}{suffix}", copy / f"ledger.db{suffix}")
    holder.close()
    ledger.close()
    before = file_digests(copy)
    assert (copy / "ledger.db-wal").stat().st_size > 0
    snap = Ledger.open(copy / "ledger.db", snapshot=True)
    assert snap.verify().size == 70
    snap.close()
    assert file_digests(copy) == before


def test_missing_ledger_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(LedgerStorageError):
        Ledger.open(tmp_path / "nope.db", snapshot=True)
    with pytest.raises(LedgerStorageError):
        Ledger.open(tmp_path / "nope.db", read_only=True)


def test_a_read_never_waits_for_a_write_in_progress(tmp_path: Path) -> None:
    # Regression: reads used to begin IMMEDIATE too, so a read on a second connection inside
    # a write transaction of the same process waited for the busy timeout (60 s).
    engine = make_engine(sqlite_url(tmp_path / "db.sqlite"))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    seen: list[int] = []

    def read() -> None:
        with engine.connect() as reader:
            seen.append(int(reader.exec_driver_sql("SELECT COUNT(*) FROM t").scalar() or 0))

    with engine.begin() as writer:
        writer.exec_driver_sql("INSERT INTO t VALUES (1)")
        thread = threading.Thread(target=read)
        thread.start()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the read waited for the writer"
    assert seen == [0]  # it saw the last committed state
    with engine.connect() as reader:
        assert reader.exec_driver_sql("SELECT COUNT(*) FROM t").scalar() == 1
