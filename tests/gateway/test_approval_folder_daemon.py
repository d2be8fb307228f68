"""A running daemon approves through its approvals folder: witnesses sign the published
statements with OpenSSH's own `ssh-keygen -Y sign` and nothing else; what a wrong file or a
wrong key drops there is refused, explained beside the statement and kept, and the daemon goes
on to deliver what was signed rightly."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import GOOD_ROWS, Demo, csv_bytes, sealed_files, wait_for

pytestmark = pytest.mark.slow
_WAIT = 120.0  # a busy 2-core machine


def _sign(demo: Demo, statement: Path, key: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-f", str(demo.key(key)), "-n",
                    "tachiai-approval", str(statement)], check=True, capture_output=True)


def _rules(demo: Demo, transfer_id: str) -> list[str]:
    lines = demo.cli("audit", "log", "--json", check=True).stdout.splitlines()
    return [e["data"]["reason"]["rule"] for e in map(json.loads, lines)
            if e["kind"] == "approval.refused" and e["subject"] == transfer_id]


def test_witnesses_approve_by_dropping_ssh_keygen_signatures(demo: Demo) -> None:
    folder = demo.root / "state" / "approvals"
    demo.start()
    demo.drop("first.csv", csv_bytes(GOOD_ROWS))
    demo.drop("second.csv", csv_bytes(list(reversed(GOOD_ROWS))))
    found = demo.wait_state("awaiting_approval", count=2, timeout=_WAIT)
    first, second = (str(t["id"]) for t in sorted(found, key=lambda t: str(t["file_name"])))
    for tid in (first, second):
        wait_for(lambda tid=tid: (folder / tid).exists(), _WAIT, f"the statement of {tid}")
        statement = demo.cli("transfers", "statement", tid, check=True).stdout
        assert (folder / tid).read_text(encoding="utf-8") == statement
        # `transfers show` points a witness without tachiai at the published statement.
        shown = demo.cli("transfers", "show", tid, check=True).stdout
        assert f"-n tachiai-approval {folder / tid} (the daemon takes {folder / tid}.sig)" \
            in shown

    _sign(demo, folder / first, "suzuki")
    demo.wait_state("delivered", timeout=_WAIT)
    assert demo.show(first)["approvals"] == ["suzuki"]
    wait_for(lambda: not (folder / f"{first}.sig").exists() and not (folder / first).exists(),
             _WAIT, "the signature consumed and the statement gone")

    os.mkfifo(folder / f"{second}.sig")  # a FIFO: read, it would hang a careless daemon
    note = folder / f"{second}.sig.refused"
    wait_for(note.exists, _WAIT, "the FIFO refused")
    assert "approval.file" in note.read_text(encoding="utf-8")
    _sign(demo, folder / second, "sato")  # the sender: may not witness their own file
    wait_for(lambda: "approval.self" in note.read_text(encoding="utf-8"), _WAIT,
             "the sender's signature refused")
    assert demo.show(second)["state"] == "awaiting_approval"
    assert demo.daemon is not None and demo.daemon.poll() is None  # still running
    assert len(list((folder / "refused").iterdir())) == 2  # both kept

    _sign(demo, folder / second, "tanaka")
    demo.wait_state("delivered", count=2, timeout=_WAIT)
    wait_for(lambda: not note.exists() and not (folder / second).exists(), _WAIT,
             "the note and the statement gone with the transfer")
    assert sorted(_rules(demo, second)) == ["approval.file", "approval.self"]
    assert len(sealed_files(demo.inbox)) == 2
    assert demo.cli("audit", "verify").returncode == 0
    log = demo.daemon_log()
    assert f"{second}.sig refused (approval.file)" in log
    assert f"transfer {second} approved by tanaka" in log
