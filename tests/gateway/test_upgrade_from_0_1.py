"""An upgrade from release 0.1, through the real daemon: a gateway whose state database has no
version table (as 0.1 wrote it: the same tables, see tests/gateway/state/test_old_database.py)
is migrated when this release starts, keeps its transfers, takes new files through the whole
path, and its ledger keeps verifying against the checkpoints signed before and after.
"""

from __future__ import annotations

import contextlib
import sqlite3

import pytest

from gateway.state import migrate
from tests.conftest import GOOD_ROWS, Demo, csv_bytes

pytestmark = pytest.mark.slow


def _deliver(demo: Demo, name: str, rows: list[str], count: int) -> None:
    demo.drop(name, csv_bytes(rows))
    (transfer,) = [t for t in demo.wait_state("awaiting_approval") if t["file_name"] == name]
    statement = demo.cli("transfers", "statement", str(transfer["id"]), check=True).stdout
    signature = demo.sign_with_ssh_keygen(statement.encode(), "suzuki")
    demo.cli("approve", str(transfer["id"]), "--signature", str(signature), check=True)
    demo.wait_state("delivered", count)


def test_a_0_1_gateway_is_migrated_keeps_its_transfers_and_keeps_verifying(demo: Demo) -> None:
    demo.start()
    _deliver(demo, "before.csv", GOOD_ROWS, 1)
    assert demo.stop() == 0
    # What release 0.1 left: its tables, no version table and none of the later ones.
    with contextlib.closing(sqlite3.connect(demo.state_db)) as db:
        db.execute("DROP TABLE alembic_version")
        for table in ("nodes", "ledger_moved", "ledger_moved_since", "fanouts",
                      "fanout_children", "approvals_set_aside"):
            db.execute(f"DROP TABLE {table}")
        for index in ("ix_transfers_created", "ix_transfers_state_created",
                      "ix_holdings_created", "ix_holdings_state_created", "ix_transfers_sha256"):
            db.execute(f"DROP INDEX {index}")
        for table, column in (("transfers", "last_error"), ("transfers", "claimed_by"),
                              ("transfers", "lease_until_ns"), ("holdings", "claimed_by"),
                              ("holdings", "lease_until_ns")):
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.commit()

    demo.start()
    assert "upgraded the state database from 0.1" in demo.daemon_log()
    # Other bytes than the first file's: the same bytes again would meet the duplicate notice.
    _deliver(demo, "after.csv", GOOD_ROWS[:1], 2)
    assert demo.stop() == 0
    assert sorted(t["file_name"] for t in demo.transfers("delivered")) == ["after.csv",
                                                                            "before.csv"]
    with contextlib.closing(sqlite3.connect(demo.state_db)) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(migrate.HEAD,)]
    verified = demo.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
