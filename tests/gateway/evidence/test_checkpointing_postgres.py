"""The checkpoint service on a PostgreSQL ledger shared by several nodes: exactly one node signs
at a time, and another takes over when it lets go; a restore from a backup meets the signed
checkpoints: a ledger restored to an older point than the last checkpoint in the checkpoint
folders is refused, never re-signed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.checkpoints import LATEST_FILE, read_places
from audit.errors import LedgerIntegrityError
from audit.ledger import Ledger
from gateway.evidence.checkpointing import CheckpointService, CheckpointSettings
from tests.audit.ledgers import transfer_events
from tests.pg import ROLE, PostgresServer, needs_postgres

pytestmark = needs_postgres


def _settings(tmp_path: Path) -> CheckpointSettings:
    return CheckpointSettings(
        key_path=tmp_path / "state" / "keys" / "ledger.key",
        key_name="tachiai-test-ledger",
        directories=(tmp_path / "checkpoints",),  # another mount, in a real setup
        state_dir=tmp_path / "state",
    )


def _append_and_sign(url: str, settings: CheckpointSettings, events: int) -> int:
    ledger = Ledger.connect(url)
    service = CheckpointService(ledger, settings)
    try:
        ledger.append(transfer_events(events, ledger.size()))
        signed = service.checkpoint_now()
        assert signed is not None
        return signed.checkpoint.size
    finally:
        service.stop()  # lets the signer lock go with its connection
        ledger.close()


def test_two_nodes_one_signer_and_the_other_takes_over(pg_url: str, tmp_path: Path) -> None:
    settings = _settings(tmp_path)  # one key, one checkpoint folder: shared by both nodes
    ledger_a, ledger_b = Ledger.connect(pg_url), Ledger.connect(pg_url)
    a, b = CheckpointService(ledger_a, settings), CheckpointService(ledger_b, settings)
    try:
        ledger_a.append(transfer_events(10))
        first = a.checkpoint_now()
        assert first is not None and first.checkpoint.size == 10
        ledger_b.append(transfer_events(5, 10))
        assert b.checkpoint_now() is None  # a holds the signer lock: b does not sign
        a.stop()  # a's node goes away (signs what it has, then lets go)
        ledger_b.append(transfer_events(5, 15))
        taken = b.checkpoint_now()
        assert taken is not None and taken.checkpoint.size == 20  # b resumed from a's, went on
    finally:
        b.stop()
        ledger_a.close()
        ledger_b.close()


# The backup is the server's own copy of the database at time T (CREATE DATABASE … TEMPLATE);
# after T more events are appended and signed; then the database is replaced by the copy.
def test_a_ledger_restored_from_an_older_backup_is_refused_naming_both_sizes(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    name = postgres.create_database()
    url = postgres.url(name)
    settings = _settings(tmp_path)
    assert _append_and_sign(url, settings, 40) == 40
    with postgres.admin() as conn:  # the backup at time T
        conn.execute(f"CREATE DATABASE {name}_t TEMPLATE {name} OWNER {ROLE}")
    assert _append_and_sign(url, settings, 25) == 65  # after T: signed, out of the database
    with postgres.admin() as conn:  # the restore
        conn.execute(f"DROP DATABASE {name}")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {name}_t OWNER {ROLE}")

    ledger = Ledger.connect(url)
    service = CheckpointService(ledger, settings)
    try:
        assert ledger.size() == 40
        with pytest.raises(LedgerIntegrityError, match="covers 65 events, the ledger holds 40"):
            service.start()  # what `tachiai run` does before anything else
        with pytest.raises(LedgerIntegrityError, match="the ledger was cut"):
            service.checkpoint_now()  # nor does a manual `tachiai audit checkpoint` sign
    finally:
        service.close()
        ledger.close()
    notes, _ = read_places([tmp_path / "checkpoints"])
    assert notes and "\n65\n" in (tmp_path / "checkpoints" / LATEST_FILE).read_text()
