"""Every refused command about a transfer leaves an event (issue 11), through the CLI:
approve or reject of a delivered or rejected transfer still exits 75, now recorded."""

from __future__ import annotations

import json

import pytest

from tests.conftest import GOOD_ROWS, Demo, csv_bytes

pytestmark = pytest.mark.slow


def _refusals(demo: Demo, transfer_id: str) -> list[tuple[str, str | None]]:
    lines = demo.cli("audit", "log", "--json", check=True).stdout.splitlines()
    return [(e["data"]["reason"]["rule"], e["data"]["signer"]) for e in map(json.loads, lines)
            if e["kind"] == "approval.refused" and e["subject"] == transfer_id]


def test_approve_and_reject_of_finished_transfers_are_refused_and_recorded(demo: Demo) -> None:
    demo.start()
    demo.drop("a.csv", csv_bytes(GOOD_ROWS))
    (first,) = demo.wait_state("awaiting_approval")
    delivered = str(first["id"])
    assert demo.cli("approve", delivered, "--key", str(demo.key("suzuki"))).returncode == 0
    demo.wait_state("delivered")
    demo.drop("b.csv", csv_bytes(GOOD_ROWS))
    (second,) = demo.wait_state("awaiting_approval")
    rejected = str(second["id"])
    assert demo.cli("reject", rejected, "--key", str(demo.key("tanaka")), "--reason",
                    "wrong month").returncode == 0
    demo.wait_state("rejected")
    for tid in (delivered, rejected):
        again = demo.cli("approve", tid, "--key", str(demo.key("tanaka")))
        assert again.returncode == 75 and "not awaiting approval" in again.stderr
        late = demo.cli("reject", tid, "--key", str(demo.key("tanaka")), "--reason", "late")
        assert late.returncode == 75 and "can no longer be rejected" in late.stderr
        assert sorted(_refusals(demo, tid)) == [("approval.state", "tanaka"),
                                                ("rejection.state", "tanaka")]
    personal = demo.cli("reject", delivered, "--key", str(demo.key("tanaka")), "--reason",
                        "row 123456789018 is wrong")
    assert personal.returncode == 2
    assert ("rejection.personal-data", None) in _refusals(demo, delivered)
    assert "123456789018" not in demo.cli("audit", "log", "--json", check=True).stdout
