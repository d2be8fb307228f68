"""A restore from a PostgreSQL backup meets the signed checkpoints: a ledger restored to an
older point than the last checkpoint in the checkpoint folders is refused, never re-signed.

The backup is the server's own copy of the database at time T (CREATE DATABASE … TEMPLATE);
after T more events are appended and signed; then the database is replaced by the copy.
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
