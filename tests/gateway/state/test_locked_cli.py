"""Through the real CLI: a state database another process holds the write lock on makes a
command that must write stop with exit 74 (storage) and a message that says it is locked, not
exit 70; a list that only reads answers from the last commit meanwhile (WAL: readers never wait
for a writer)."""

from __future__ import annotations

import contextlib
import sqlite3

from tests.conftest import Demo


def test_a_locked_state_database_is_exit_74_with_a_clear_message(demo: Demo) -> None:
    text = demo.config.read_text(encoding="utf-8")
    # A short wait for the lock, so the test does not sit out the default minute.
    demo.config.write_text(
        text.replace("[gateway]\n", "[gateway]\nbusy_timeout_seconds = 0.3\n", 1),
        encoding="utf-8",
    )
    demo.cli("transfers", "list", check=True)  # creates the database
    with contextlib.closing(sqlite3.connect(demo.state_db, isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")
        results = [demo.cli("holdings", "list")]  # its Store opens under the write lock
        reader = demo.cli("transfers", "list")  # reads only (gateway.state.lite)
        other.execute("ROLLBACK")
    assert reader.returncode == 0, reader.stderr
    assert reader.stdout.strip() == "no transfers"
    for result in results:
        assert result.returncode == 74, result.stderr
        assert "state database is locked by another process" in result.stderr
        assert "next: retry in a moment" in result.stderr
        assert "Traceback" not in result.stderr
    assert demo.cli("holdings", "list").returncode == 0  # and works again once it is unlocked
