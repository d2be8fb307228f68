"""The race of two equal files through a real daemon: the second is approved, its seal held
(fault injection) while the first is approved, sealed and delivered; then it goes back to its
witnesses with the duplicate notice instead of being rejected or sent on the old approval.
The witnesses are told again (the notice hook), approve the new statement, and it is delivered.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.faults import PAUSE_ENV, PAUSED_MARK, RESUME_ENV
from tests.conftest import GOOD_ROWS, Demo, csv_bytes, sealed_files, wait_for
from tests.gateway.outbound.test_notices import events, hook_documents

pytestmark = pytest.mark.slow

APPEARED = "approval.duplicate-appeared"
HOOK = """\
import sys
with open(sys.argv[1], "ab") as out:
    out.write(sys.stdin.buffer.read() + b"\\n")
"""


def test_a_duplicate_delivered_during_the_seal_sends_the_second_back_to_its_witnesses(
    demo: Demo, tmp_path: Path
) -> None:
    hook_out = tmp_path / "notices.jsonl"
    _notify_by_hook(demo, hook_out)
    resume = tmp_path / "resume-seal"
    demo.start(env={PAUSE_ENV: "seal-block:600", RESUME_ENV: str(resume)})
    data = csv_bytes(GOOD_ROWS)
    demo.drop("a.csv", data)
    demo.drop("b.csv", data)
    waiting = demo.wait_state("awaiting_approval", count=2, timeout=120)
    ids = {t["file_name"]: t["id"] for t in waiting}
    first, second = ids["a.csv"], ids["b.csv"]
    suzuki = str(demo.key("suzuki"))

    # The second is approved over its statement without a duplicate line (signed by OpenSSH's
    # ssh-keygen); its seal is held.
    _approve_with_ssh_keygen(demo, second)
    wait_for(lambda: PAUSED_MARK in demo.daemon_log(), 120, "the second's seal to pause")
    # Meanwhile the first is approved, sealed and delivered by the other sealing worker.
    demo.cli("approve", first, "--key", suzuki, check=True)
    wait_for(lambda: [t for t in demo.transfers("delivered") if t["id"] == first], 120,
             "the first to be delivered")
    resume.touch()

    def back() -> dict[str, Any] | None:
        shown = demo.show(second)
        return shown if shown["state"] == "awaiting_approval" and shown["reasons"] else None

    shown = wait_for(back, 120, "the second to wait for its witnesses again")
    assert [r["rule"] for r in shown["reasons"]] == [APPEARED]
    assert shown["approvals"] == []
    statement = demo.cli("transfers", "statement", second, check=True).stdout
    assert statement.endswith(f"duplicate-of: {first}\n")
    assert len(sealed_files(demo.inbox)) == 1, "the second was not sent"
    demo.wait_ledger(120)
    voided = events(demo, "approval.voided")
    assert [(e["subject"], e["data"]["duplicate_of"]) for e in voided] == [(second, first)]
    assert not [e for e in events(demo, "transfer.rejected") if e["subject"] == second]

    # Both witnesses are told again, with --duplicate-ok among the next commands.
    def told_again() -> list[dict[str, Any]]:
        return [d for d in hook_documents(hook_out)
                if d["kind"] == "approval.again" and d["subject"] == second]

    again = wait_for(lambda: (lambda found: found if len(found) == 2 else None)(told_again()),
                     120, "the witnesses' notices")
    assert {d["to"] for d in again} == {"suzuki", "tanaka"}
    assert all(d["facts"]["duplicate_of"] == first and d["facts"]["set_aside"] == 1
               and f"tachiai approve {second} --key KEY --duplicate-ok" in d["next"]
               for d in again)

    refused = demo.cli("approve", second, "--key", suzuki)
    assert refused.returncode == 1 and "approval.duplicate-file" in refused.stderr
    _approve_with_ssh_keygen(demo, second, "--duplicate-ok")
    wait_for(lambda: [t for t in demo.transfers("delivered") if t["id"] == second], 120,
             "the second to be delivered on its new approval")
    assert len(sealed_files(demo.inbox)) == 2
    demo.wait_ledger(120)
    accepted = [e for e in events(demo, "approval.accepted") if e["subject"] == second]
    assert [e["data"].get("duplicate_of") for e in accepted] == [None, first]
    verified = demo.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert demo.stop() == 0


def _approve_with_ssh_keygen(demo: Demo, transfer_id: str, *flags: str) -> None:
    statement = demo.cli("transfers", "statement", transfer_id, check=True).stdout
    signature = demo.sign_with_ssh_keygen(statement.encode("utf-8"), "suzuki")
    demo.cli("approve", transfer_id, "--signature", str(signature), *flags, check=True)


def _notify_by_hook(demo: Demo, hook_out: Path) -> None:
    hook = demo.root / "hook.py"
    hook.write_text(HOOK, encoding="utf-8")
    with demo.config.open("a", encoding="utf-8") as f:
        f.write(f"""
[notify]
command = [{json.dumps(sys.executable)}, {json.dumps(str(hook))}, {json.dumps(str(hook_out))}]
sweep_seconds = 0.2
""")


