"""The walking skeleton, end to end through the real CLI and the real daemon.

A file dropped by the designated sender is checked, approved by a witness whose signature real
`ssh-keygen -Y sign` made, sealed, delivered, and opened by real `7zz` with the delivered
password into the original bytes. Then each way it must refuse.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import (
    GOOD_ROWS,
    HEADER,
    Demo,
    csv_bytes,
    needs_7zz,
    sealed_files,
    shows_value,
)

pytestmark = pytest.mark.slow


def _awaiting(demo: Demo, name: str, data: bytes) -> dict[str, object]:
    demo.drop(name, data)
    (transfer,) = demo.wait_state("awaiting_approval")
    return transfer


def _open_with_7zz(zip_path: Path, password: str, out: Path) -> None:
    subprocess.run(["7zz", "x", "-y", f"-o{out}", f"-p{password}", str(zip_path)],
                   check=True, capture_output=True)


@needs_7zz
def test_witnessed_send_is_delivered_and_opens_with_7zz(demo: Demo, tmp_path: Path) -> None:
    data = csv_bytes(GOOD_ROWS)
    demo.start()
    transfer = _awaiting(demo, "status-change-2026-10.csv", data)
    assert transfer["sender"] == "sato"
    assert transfer["sha256"] == hashlib.sha256(data).hexdigest()
    assert transfer["size"] == len(data)
    assert not list(demo.outbox.iterdir()), "the outbox entry must be moved into the spool"

    statement = demo.cli("transfers", "statement", str(transfer["id"]), check=True).stdout
    assert f"sha256: {transfer['sha256']}" in statement
    signature = demo.sign_with_ssh_keygen(statement.encode(), "suzuki")
    approved = demo.cli("approve", str(transfer["id"]), "--signature", str(signature))
    assert approved.returncode == 0, approved.stderr

    (done,) = demo.wait_state("delivered")
    assert done["approvals"] == ["suzuki"]
    delivered = Path(done["delivered_path"])
    password_file = Path(done["password_path"])
    assert delivered.parent == demo.inbox and password_file.parent == demo.passwords
    assert [p.name for p in sealed_files(demo.inbox)] == [delivered.name]
    assert (demo.inbox / f"{delivered.name}.manifest.json").is_file(), "the manifest (送付票)"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text().strip()
    assert password.encode() not in delivered.read_bytes()
    _open_with_7zz(delivered, password, tmp_path / "opened")
    assert (tmp_path / "opened" / "status-change-2026-10.csv").read_bytes() == data
    with pytest.raises(subprocess.CalledProcessError):
        _open_with_7zz(delivered, "not-the-password", tmp_path / "wrong")
    assert not (demo.spool / str(done["id"]) / "password").exists(), "spool password erased"

    kinds = [line.split()[2] for line in demo.cli("audit", "log", check=True).stdout.splitlines()]
    assert kinds == ["transfer.dropped", "transfer.quarantined", "transfer.checked",
                     "approval.accepted", "transfer.approved", "transfer.sealed",
                     "password.issued", "transfer.delivered"]
    assert demo.cli("audit", "verify").returncode == 0
    assert demo.stop() == 0


def test_approve_with_key_signs_and_submits(demo: Demo) -> None:
    demo.start()
    transfer = _awaiting(demo, "a.csv", csv_bytes(GOOD_ROWS))
    result = demo.cli("approve", str(transfer["id"]), "--key", str(demo.key("tanaka")))
    assert result.returncode == 0, result.stderr
    assert "approved" in result.stdout
    demo.wait_state("delivered")


@pytest.mark.parametrize(
    ("rows", "header", "rule", "column"),
    [
        (GOOD_ROWS, HEADER + ",備考", "content.header.extra", None),
        (["TEST TARO,131042,東京都新宿区サンプル町1-1,1,1990/04/01,2026/10/01"], None,
         "value.local-government-code", "住居地(地方公共団体コード)"),
        (["TEST TARO,131041,東京都新宿区サンプル町 123456789018,1,1990/04/01,2026/10/01"], None,
         "content.my-number", "住居地"),
        (["TEST TARO,131041,東京都新宿区サンプル町1-1,5,1990/04/01,2026/10/01"], None,
         "value.sex", "性別"),
        (["TEST TARO,131041,東京都新宿区サンプル町1-1,1,令和1年4月30日,2026/10/01"], None,
         "value.date", "生年月日"),
    ],
    ids=["extra-column", "bad-check-digit", "my-number", "bad-sex", "date-before-era"],
)
def test_content_rejections_name_rule_row_and_column_but_never_the_value(
    demo: Demo, rows: list[str], header: str | None, rule: str, column: str | None
) -> None:
    data = csv_bytes(rows, header) if header else csv_bytes(rows)
    demo.start()
    demo.drop("bad.csv", data)
    (transfer,) = demo.wait_state("rejected")
    reasons = transfer["reasons"]
    assert rule in [r["rule"] for r in reasons], reasons
    hit = next(r for r in reasons if r["rule"] == rule)
    # An unknown header cell is named by position only: it may be a data row (no header).
    assert hit.get("column") == column
    assert hit.get("term", "").startswith("isa-nhi-status-loss/")
    shown = demo.cli("transfers", "show", str(transfer["id"])).stdout + str(reasons)
    for secret in ("123456789018", "131042", "令和1年4月30日"):
        assert secret not in shown
    ledger_text = demo.cli("audit", "log", "--json").stdout
    assert "123456789018" not in ledger_text
    kept = demo.spool / str(transfer["id"]) / "payload"
    assert kept.read_bytes() == data, "a rejected file is kept, never deleted"
    assert demo.daemon is not None and demo.daemon.poll() is None, "the daemon keeps running"


def test_unknown_sender_is_rejected(demo: Demo) -> None:
    demo.start()
    staging = demo.root / "staging-nobody"
    staging.mkdir()
    path = staging / "x.csv"
    path.write_bytes(csv_bytes(GOOD_ROWS))
    os.chown(path, 65534, 65534)  # nobody: designated as no one's sender
    os.replace(path, demo.outbox / "x.csv")
    (transfer,) = demo.wait_state("rejected")
    assert [r["rule"] for r in transfer["reasons"]] == ["sender.not-designated"]


def test_self_approval_is_refused_and_recorded(demo: Demo) -> None:
    demo.start()
    transfer = _awaiting(demo, "a.csv", csv_bytes(GOOD_ROWS))
    result = demo.cli("approve", str(transfer["id"]), "--key", str(demo.key("sato")))
    assert result.returncode == 1
    assert "approval.self" in result.stderr and "sender cannot witness" in result.stderr
    assert demo.show(str(transfer["id"]))["state"] == "awaiting_approval"
    assert "approval.refused" in demo.cli("audit", "log").stdout


def test_a_receiving_handler_cannot_witness(demo: Demo) -> None:
    demo.start()
    transfer = _awaiting(demo, "a.csv", csv_bytes(GOOD_ROWS))
    result = demo.cli("approve", str(transfer["id"]), "--key", str(demo.key("takahashi")))
    assert result.returncode == 1
    assert "approval.wrong-party" in result.stderr


def test_wrong_namespace_is_refused(demo: Demo) -> None:
    demo.start()
    transfer = _awaiting(demo, "a.csv", csv_bytes(GOOD_ROWS))
    statement = demo.cli("transfers", "statement", str(transfer["id"]), check=True).stdout
    signature = demo.sign_with_ssh_keygen(statement.encode(), "suzuki", namespace="file")
    result = demo.cli("approve", str(transfer["id"]), "--signature", str(signature))
    assert result.returncode == 1
    assert "tachiai-approval" in result.stderr and "file" in result.stderr
    assert demo.show(str(transfer["id"]))["approvals"] == []


def test_signature_over_another_statement_is_refused(demo: Demo) -> None:
    demo.start()
    demo.drop("one.csv", csv_bytes(GOOD_ROWS))
    demo.drop("two.csv", csv_bytes(GOOD_ROWS[:1]))
    first, second = demo.wait_state("awaiting_approval", count=2)
    statement = demo.cli("transfers", "statement", str(first["id"]), check=True).stdout
    signature = demo.sign_with_ssh_keygen(statement.encode(), "suzuki")
    result = demo.cli("approve", str(second["id"]), "--signature", str(signature))
    assert result.returncode == 1
    assert "does not match" in result.stderr or "other bytes" in result.stderr
    assert demo.show(str(second["id"]))["state"] == "awaiting_approval"


def test_file_changed_after_approval_voids_the_approvals(demo: Demo) -> None:
    demo.start()
    transfer = _awaiting(demo, "a.csv", csv_bytes(GOOD_ROWS))
    demo.stop()  # hold the pipeline so the change lands between approval and sealing
    assert demo.cli("approve", str(transfer["id"]), "--key", str(demo.key("suzuki"))
                    ).returncode == 0
    payload = demo.spool / str(transfer["id"]) / "payload"
    tampered = bytearray(payload.read_bytes())
    tampered[-3] ^= 0x01
    payload.write_bytes(bytes(tampered))
    demo.start()
    (rejected,) = demo.wait_state("rejected")
    assert [r["rule"] for r in rejected["reasons"]] == ["approval.void"]
    assert not list(demo.inbox.iterdir()), "nothing was delivered"


def test_an_approved_transfer_cannot_be_approved_again(demo: Demo) -> None:
    demo.start()
    transfer = _awaiting(demo, "a.csv", csv_bytes(GOOD_ROWS))
    assert demo.cli("approve", str(transfer["id"]), "--key", str(demo.key("suzuki"))
                    ).returncode == 0
    demo.wait_state("delivered")
    again = demo.cli("approve", str(transfer["id"]), "--key", str(demo.key("tanaka")))
    assert again.returncode == 75 and "not awaiting approval" in again.stderr


def test_reject_by_witness_stops_the_transfer(demo: Demo) -> None:
    demo.start()
    transfer = _awaiting(demo, "a.csv", csv_bytes(GOOD_ROWS))
    result = demo.cli("reject", str(transfer["id"]), "--key", str(demo.key("tanaka")),
                      "--reason", "wrong month")
    assert result.returncode == 0, result.stderr
    shown = demo.show(str(transfer["id"]))
    assert shown["state"] == "rejected"
    assert shown["reasons"][0]["rule"] == "rejection.by-handler"


def test_rows_outside_the_delegation_scope_are_withheld_and_counted(demo: Demo) -> None:
    """委任状 scope (seed 000 記1(3)): only municipalities that filed one are provided."""
    covered = GOOD_ROWS[0]  # 131041 新宿区: in the (sample) delegation registry
    outside = "SAMPLE JIRO,271004,大阪府大阪市テスト町3-3,1,1970/01/01,2026/10/02"  # 大阪市: not
    data = csv_bytes([covered, outside])
    demo.start()
    demo.drop("scope.csv", data)
    (transfer,) = demo.wait_state("awaiting_approval")
    expected = csv_bytes([covered])
    assert transfer["sha256"] == hashlib.sha256(expected).hexdigest()
    assert transfer["rows"] == 1
    folder = demo.spool / str(transfer["id"])
    assert (folder / "payload").read_bytes() == expected, "only the covered rows, byte for byte"
    assert (folder / "original").read_bytes() == data, "the file as dropped is kept"
    events = demo.cli("audit", "log", "--json", check=True).stdout
    checked = next(json.loads(line) for line in events.splitlines()
                   if json.loads(line)["kind"] == "transfer.checked")
    assert checked["data"]["withheld"] == 1 and checked["data"]["provided"] == 1
    assert not shows_value(events, "SAMPLE JIRO") and not shows_value(events, "271004")
    statement = demo.cli("transfers", "statement", str(transfer["id"]), check=True).stdout
    assert f"size: {len(expected)}" in statement
