"""Approvals in batches through the real CLI: one key for many transfers, or a folder of
signatures made by real `ssh-keygen -Y sign`; each transfer is verified and recorded on its own,
and a refusal of one stops none of the others."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import GOOD_ROWS, Demo, csv_bytes

pytestmark = pytest.mark.slow


def _awaiting(demo: Demo, count: int) -> list[str]:
    demo.start()
    for i in range(count):
        demo.drop(f"status-change-{i}.csv", csv_bytes(GOOD_ROWS))
    found = demo.wait_state("awaiting_approval", count=count)
    demo.stop()  # the transfers stay where they are: the test reads states, not deliveries
    return sorted(str(t["id"]) for t in found)


def _sign_into(demo: Demo, folder: Path, transfer_id: str, key: str) -> None:
    """What a witness does by hand: save the statement as DIR/ID, sign it into DIR/ID.sig."""
    statement = demo.cli("transfers", "statement", transfer_id, check=True).stdout
    (folder / transfer_id).write_text(statement, encoding="utf-8")
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-n", "tachiai-approval", "-f",
                    str(demo.key(key)), str(folder / transfer_id)], check=True,
                   capture_output=True)


def test_one_key_approves_several_and_a_refusal_stops_none_of_the_others(demo: Demo) -> None:
    first, second = _awaiting(demo, 2)
    result = demo.cli("approve", first, "t-000000000000", second, "--key",
                      str(demo.key("suzuki")))
    assert result.returncode == 1, result.stderr  # one was refused
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [first, second]
    assert all("approval by suzuki recorded" in line and "approved" in line for line in lines)
    assert "t-000000000000: NOT approved: no transfer 't-000000000000'" in result.stderr
    assert "2 of 3 approval(s) recorded" in result.stderr
    assert demo.show(first)["state"] == demo.show(second)["state"] == "approved"

    again = demo.cli("approve", first, second, "--key", str(demo.key("suzuki")))
    assert again.returncode == 1  # each refused on its own: no longer awaiting approval
    assert again.stderr.count("NOT approved") == 2
    # Each refusal is said once, by the command: the domain's log line of the same refusal
    # (kept in the daemon's log) stays out of the command's stderr, unless asked for.
    assert "refused: approval.state" not in again.stderr and "WARNING" not in again.stderr
    assert len(again.stderr.splitlines()) == 3, again.stderr
    told = demo.cli("approve", first, "--key", str(demo.key("suzuki")), "--verbose")
    assert told.returncode == 75 and f"approval of {first} refused: approval.state" in told.stderr


def test_all_approved_exits_0_and_says_so_once(demo: Demo) -> None:
    *ids, last = _awaiting(demo, 3)
    result = demo.cli("approve", *ids, "--key", str(demo.key("tanaka")))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert [demo.show(i)["approvals"] for i in ids] == [["tanaka"], ["tanaka"]]
    # The command's own lines say it; the domain's log of the same (the daemon's) stays out,
    # unless asked for with --verbose.
    assert "approved by tanaka" not in result.stderr, result.stderr
    told = demo.cli("approve", last, "--key", str(demo.key("tanaka")), "--verbose")
    assert told.returncode == 0 and f"transfer {last} approved by tanaka" in told.stderr


def test_a_folder_of_ssh_keygen_signatures_each_verified_on_its_own(
    demo: Demo, tmp_path: Path
) -> None:
    good, by_sender, unsigned = _awaiting(demo, 3)
    folder = tmp_path / "signatures"
    folder.mkdir()
    _sign_into(demo, folder, good, "suzuki")
    _sign_into(demo, folder, by_sender, "sato")  # the sender may not witness their own file
    (folder / f"{unsigned}.stmt").write_text("not a signature")

    result = demo.cli("approve", "--signatures", str(folder))  # every ID.sig in the folder
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        line for line in result.stdout.splitlines() if line.startswith(f"{good}: approval by")
    ] and len(result.stdout.splitlines()) == 1
    assert f"{by_sender}: NOT approved: refused:" in result.stderr
    assert unsigned not in result.stderr + result.stdout  # no ID.sig: not named
    assert demo.show(good)["state"] == "approved"
    assert demo.show(by_sender)["state"] == "awaiting_approval"
    kinds = demo.cli("audit", "query", "--subject", by_sender, "--format", "json", check=True)
    assert "approval.refused" in kinds.stdout  # the refusal is evidence too

    named = demo.cli("approve", unsigned, "--signatures", str(folder))
    assert named.returncode == 1
    assert f"{unsigned}: NOT approved: cannot read the signature" in named.stderr


def test_signature_of_one_transfer_is_not_given_to_several(demo: Demo) -> None:
    result = demo.cli("approve", "t-1", "t-2", "--signature", "x.sig")
    assert result.returncode == 2
    assert "--signature is one transfer's signature" in result.stderr
