"""Progress of long work on a terminal: `audit verify` shows events verified of the total on
stderr when stderr is a terminal, and prints exactly what it did before when it is not."""

from __future__ import annotations

import os
import pty
import subprocess

from audit.ledger import Ledger
from tests.audit.ledgers import transfer_events
from tests.conftest import Demo, read_terminal, tachiai_command


def _filled(demo: Demo) -> None:
    ledger = Ledger.open(demo.ledger)
    ledger.append(transfer_events(40))
    ledger.close()


def test_verify_shows_progress_on_a_terminal(demo: Demo) -> None:
    _filled(demo)
    main, side = pty.openpty()
    try:
        result = subprocess.run([*tachiai_command(), "audit", "verify", "--config",
                                 str(demo.config)], stdout=subprocess.PIPE, stderr=side,
                                timeout=120)
        os.close(side)
        shown = read_terminal(main)
    finally:
        os.close(main)
    assert result.returncode == 0, shown
    assert b"verifying: 40 of 40 events (100%)" in shown
    assert b"verifying" not in result.stdout  # the report itself is unchanged


def test_verify_prints_no_progress_when_not_a_terminal(demo: Demo) -> None:
    _filled(demo)
    result = demo.cli("audit", "verify")
    assert result.returncode == 0, result.stderr
    assert "verifying" not in result.stderr + result.stdout
    assert result.stdout.startswith("the ledger is intact: 40 events")
