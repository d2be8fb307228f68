"""Dropped files' names are checked before they become evidence (issue 11).

A poison-pill name (not UTF-8) is refused and kept, the daemon keeps going and restarts; a
refused name appears in no event, log line, listing or database row, only its keyed hash.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from stdnum.jp import in_

from tests.conftest import GOOD_ROWS, Demo, csv_bytes, wait_for

pytestmark = pytest.mark.slow

BASE = "98765432101"
MY_NUMBER = BASE + in_.calc_check_digit(BASE)  # synthetic: a valid check digit, nobody's number


def drop_raw(demo: Demo, raw: bytes, data: bytes) -> None:
    """Drop a file whose name is raw bytes (rename from a staging folder, as a sender does)."""
    staging = os.fsencode(demo.root / "staging")
    os.makedirs(staging, exist_ok=True)
    tmp = os.path.join(staging, raw)
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, os.path.join(os.fsencode(demo.outbox), raw))


def state_dump(db: Path) -> bytes:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return "\n".join(conn.iterdump()).encode("utf-8", "surrogateescape")


def test_a_name_that_is_not_utf8_is_refused_kept_and_survives_restarts(demo: Demo) -> None:
    poison = b"bad-\xff\xfe.csv"
    drop_raw(demo, poison, csv_bytes(GOOD_ROWS))  # there before the daemon starts
    demo.start()
    (refused,) = demo.wait_state("rejected")
    assert [r["rule"] for r in refused["reasons"]] == ["intake.name-not-utf8"]
    assert refused["file_name"] == "" and len(refused["name_hmac"]) == 64
    assert not os.listdir(os.fsencode(demo.outbox))  # taken out of the outbox …
    kept = demo.spool / str(refused["id"]) / "dropped"
    assert kept.read_bytes() == csv_bytes(GOOD_ROWS)  # … and kept in the spool, never deleted
    demo.drop("good.csv", csv_bytes(GOOD_ROWS))  # the daemon is still working
    (good,) = demo.wait_state("awaiting_approval")
    assert good["file_name"] == "good.csv"
    assert demo.stop() == 0
    demo.start()  # restarts cleanly with the refused file still in the spool
    assert demo.daemon is not None and demo.daemon.poll() is None
    assert demo.stop() == 0
    log_text = demo.daemon_log()
    assert "UnicodeEncodeError" not in log_text and "Traceback" not in log_text
    assert b"bad-" not in demo.ledger.read_bytes() and b"bad-" not in state_dump(demo.state_db)
    key = demo.root / "state" / "keys" / "name.key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32


def test_the_dropped_event_carries_the_hash_and_the_checked_name_follows(demo: Demo) -> None:
    demo.start()
    demo.drop("在留資格.csv", csv_bytes(GOOD_ROWS))
    (t,) = demo.wait_state("awaiting_approval")
    lines = demo.cli("audit", "log", "--json", check=True).stdout.splitlines()
    events = {e["kind"]: e for e in map(json.loads, lines) if e["subject"] == t["id"]}
    assert "file_name" not in events["transfer.dropped"]["data"]
    assert len(events["transfer.dropped"]["data"]["name_hmac"]) == 64
    assert events["transfer.quarantined"]["data"]["file_name"] == "在留資格.csv"
    assert t["file_name"] == "在留資格.csv" and t["name_hmac"] is None


def test_a_my_number_or_a_control_in_a_name_is_refused_and_stored_nowhere(demo: Demo) -> None:
    demo.start()
    demo.drop(f"申請者-{MY_NUMBER}.csv", csv_bytes(GOOD_ROWS))
    demo.drop("two\nlines.csv", csv_bytes(GOOD_ROWS))
    refused = demo.wait_state("rejected", count=2)
    assert sorted(r["reasons"][0]["rule"] for r in refused) == [
        "intake.name-control", "intake.name-my-number"]
    assert demo.stop() == 0
    listing = demo.cli("transfers", "list", check=True).stdout
    shown = "".join(demo.cli("transfers", "show", str(r["id"]), check=True).stdout
                    for r in refused)
    log = demo.cli("audit", "log", "--json", check=True).stdout
    for text in (listing, shown, log, demo.daemon_log()):
        assert MY_NUMBER not in text and "申請者" not in text and "lines.csv" not in text
    for blob in (demo.ledger.read_bytes(), state_dump(demo.state_db)):
        assert MY_NUMBER.encode() not in blob and "申請者".encode() not in blob
    wait_for(lambda: all((demo.spool / str(r["id"]) / "dropped").is_file() for r in refused))
