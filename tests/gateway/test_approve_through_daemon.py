"""`tachiai approve ID --key KEY` while the daemon runs: the command signs the statement the
daemon published with ssh-keygen and hands the signature to the daemon, which checks and
records it (gateway.outbound.handover). Against a real daemon and real keys: what counts,
what is refused and why (told apart from an earlier refusal), a statement planted under
another transfer's name, a daemon that does not answer in time, and no daemon at all."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from gateway.errors import CheckFailed, StateError
from tests.conftest import GOOD_ROWS, Demo, csv_bytes, fast_config, wait_for

pytestmark = pytest.mark.slow
_WAIT = 120.0  # a busy 2-core machine


def _events(demo: Demo, transfer_id: str) -> list[dict[str, object]]:
    demo.wait_ledger(_WAIT)
    lines = demo.cli("audit", "log", "--json", check=True).stdout.splitlines()
    return [e for e in map(json.loads, lines) if e["subject"] == transfer_id]


def _published(demo: Demo, count: int) -> tuple[Path, list[str]]:
    """Drop `count` files and wait until each awaits approval with its statement published."""
    folder = demo.root / "state" / "approvals"
    rows = list(GOOD_ROWS)
    for i in range(count):
        demo.drop(f"file-{i}.csv", csv_bytes(rows[i:] + rows[:i]))
    found = demo.wait_state("awaiting_approval", count=count, timeout=_WAIT)
    ids = [str(t["id"]) for t in sorted(found, key=lambda t: str(t["file_name"]))]
    for tid in ids:
        wait_for(lambda tid=tid: (folder / tid).exists(), _WAIT, f"the statement of {tid}")
    return folder, ids


def _approve(demo: Demo, tid: str, key: str, *more: str) -> tuple[int, str, str]:
    done = demo.cli("approve", tid, "--key", str(demo.key(key)), *more)
    return done.returncode, done.stdout, done.stderr


def test_the_daemon_counts_the_signature_and_the_command_prints_its_verdict(demo: Demo) -> None:
    demo.start()
    folder, (tid,) = _published(demo, 1)
    code, out, err = _approve(demo, tid, "suzuki")
    assert code == 0, err
    assert "approval by suzuki recorded (1 of 1 witness(es))" in out
    assert f"transfer {tid} is approved" in out
    # Recorded by the daemon (its log), not by the command: the command loads no approval code.
    assert f"transfer {tid} approved by suzuki (1 of 1)" in demo.daemon_log()
    assert "approved by" not in err
    kinds = [e["kind"] for e in _events(demo, tid)]
    assert "approval.accepted" in kinds and "transfer.approved" in kinds
    demo.wait_state("delivered", timeout=_WAIT)
    assert demo.show(tid)["approvals"] == ["suzuki"]
    assert not (folder / f"{tid}.sig").exists()


def test_a_refusal_is_the_daemons_own_and_never_an_earlier_one(demo: Demo) -> None:
    demo.start()
    folder, (tid,) = _published(demo, 1)
    code, out, err = _approve(demo, tid, "sato")  # the sender: may not witness her own file
    assert code == CheckFailed.exit_code, (out, err)
    assert "approval.self" in err and out == ""
    assert "approval.self" in (folder / f"{tid}.sig.refused").read_text(encoding="utf-8")
    assert f"approval of {tid} refused: approval.self" in demo.daemon_log()  # for its operator
    # Another party's witness: a new refusal, not the note the first one left.
    code, out, err = _approve(demo, tid, "yamada")
    assert code == CheckFailed.exit_code, (out, err)
    assert "approval.self" not in err and "[approval." in err, err
    assert len(list((folder / "refused").iterdir())) == 2
    assert demo.show(tid)["state"] == "awaiting_approval"
    # A good signature beside the last refusal's note: counted, whatever the note says.
    code, out, err = _approve(demo, tid, "suzuki")
    assert code == 0, err
    assert "approval by suzuki recorded" in out
    rules = [e["data"]["reason"]["rule"] for e in _events(demo, tid)  # type: ignore[index]
             if e["kind"] == "approval.refused"]
    assert rules[0] == "approval.self" and len(rules) == 2
    # Too late: the transfer no longer awaits approval and its statement left the folder, so
    # the command approves in-process and is refused for the state, as always.
    wait_for(lambda: not (folder / tid).exists(), _WAIT, "the statement gone")
    code, out, err = _approve(demo, tid, "tanaka")
    assert code == StateError.exit_code, (out, err)


def test_a_statement_planted_under_another_id_is_never_signed(demo: Demo) -> None:
    demo.start()
    folder, (first, second) = _published(demo, 2)
    # Whoever can write the folder as the daemon puts the second's statement in the first's
    # place: a witness who signed it would approve the second while meaning the first.
    os.replace(folder / second, folder / first)
    shutil.copyfile(folder / first, folder / second)
    code, out, err = _approve(demo, first, "suzuki")
    assert code == CheckFailed.exit_code, (out, err)
    assert "approval.statement" in err
    assert sorted(p.name for p in folder.iterdir()
                  if p.name.endswith((".sig", ".tmp", ".taking"))) == []
    assert list((folder / "refused").iterdir()) == []
    # A link in its place is refused the same way, unread.
    (folder / first).unlink()
    os.symlink(folder / second, folder / first)
    code, out, err = _approve(demo, first, "suzuki")
    assert code == CheckFailed.exit_code and "approval.statement" in err, (out, err)
    for tid in (first, second):
        assert demo.show(tid)["state"] == "awaiting_approval"
        assert [e["kind"] for e in _events(demo, tid)
                if str(e["kind"]).startswith("approval.")] == []


def test_a_daemon_that_does_not_answer_leaves_the_signature_waiting(demo: Demo) -> None:
    daemon = demo.start()
    folder, (tid,) = _published(demo, 1)
    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        code, out, err = _approve(demo, tid, "suzuki", "--wait", "1.5")
        assert code == StateError.exit_code, (out, err)
        assert f"waits in {folder}" in err and f"tachiai transfers show {tid}" in err
        assert (folder / f"{tid}.sig").exists()
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
    # Once it runs again, the daemon takes the signature that waited.
    wait_for(lambda: demo.show(tid)["approvals"] == ["suzuki"], _WAIT, "the approval counted")
    wait_for(lambda: not (folder / f"{tid}.sig").exists(), _WAIT, "the signature taken")
    assert "approval.accepted" in [e["kind"] for e in _events(demo, tid)]


def test_without_a_running_daemon_the_command_approves_in_process(demo: Demo) -> None:
    demo.start()
    folder, (tid,) = _published(demo, 1)
    demo.stop()
    assert (folder / tid).exists()  # the statement is still there: the daemon is not
    code, out, err = _approve(demo, tid, "suzuki")
    assert code == 0, err
    assert "approval by suzuki recorded (1 of 1 witness(es))" in out
    assert not (folder / f"{tid}.sig").exists()  # nothing handed over
    assert demo.show(tid)["state"] == "approved"


def test_a_key_ssh_keygen_cannot_use_is_tried_once_then_approved_in_process(
    demo: Demo, tmp_path: Path
) -> None:
    # ssh-keygen refuses (a wrong passphrase, a security key not touched): the witness is not
    # asked by ssh-keygen a second time before the approval goes on in the command's process.
    demo.start()
    _folder, (tid,) = _published(demo, 1)
    tools, calls = tmp_path / "bin", tmp_path / "calls"
    tools.mkdir()
    (tools / "ssh-keygen").write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexit 1\n',
                                      encoding="utf-8")
    (tools / "ssh-keygen").chmod(0o755)
    done = demo.cli("approve", tid, "--key", str(demo.key("suzuki")),
                    env={"PATH": f"{tools}:{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    assert len(calls.read_text(encoding="utf-8").splitlines()) == 1
    assert "approval by suzuki recorded (1 of 1 witness(es))" in done.stdout
    assert demo.show(tid)["approvals"] == ["suzuki"]


def test_several_at_once_each_with_its_own_verdict(demo: Demo) -> None:
    demo.start()
    folder, (first, second, third) = _published(demo, 3)
    # The second's statement under the first's name: the first is refused before signing,
    # the others are signed by one ssh-keygen run and counted by the daemon.
    shutil.copyfile(folder / second, folder / first)
    done = demo.cli("approve", first, second, third, "--key", str(demo.key("suzuki")))
    assert done.returncode == CheckFailed.exit_code, (done.stdout, done.stderr)
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == [second, third]
    assert all("approval by suzuki recorded (1 of 1 witness(es)); approved" in line
               for line in done.stdout.splitlines())
    assert f"{first}: NOT approved:" in done.stderr and "approval.statement" in done.stderr
    assert "2 of 3 approval(s) recorded" in done.stderr
    for tid in (second, third):
        assert f"transfer {tid} approved by suzuki (1 of 1)" in demo.daemon_log()
    demo.wait_state("delivered", count=2, timeout=_WAIT)
    assert demo.show(first)["state"] == "awaiting_approval"
    assert [e["kind"] for e in _events(demo, first) if str(e["kind"]).startswith("approval.")] == []


def test_several_at_once_with_the_daemon_stopped_wait_and_say_so(demo: Demo) -> None:
    daemon = demo.start()
    folder, ids = _published(demo, 2)
    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        done = demo.cli("approve", *ids, "--key", str(demo.key("suzuki")), "--wait", "1.5")
        assert done.returncode == StateError.exit_code, (done.stdout, done.stderr)
        assert done.stdout == ""
        for tid in ids:
            assert f"{tid}: handed to the daemon, its verdict not yet given" in done.stderr
            assert (folder / f"{tid}.sig").exists()
        assert "NOT approved" not in done.stderr and "0 of 2 approval(s)" in done.stderr
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
    for tid in ids:
        wait_for(lambda tid=tid: demo.show(tid)["approvals"] == ["suzuki"], _WAIT,
                 "the approval counted")


def test_a_statement_is_published_when_its_transfer_comes_to_wait(demo: Demo) -> None:
    """With the daemon's regular turn five minutes apart, a witness still finds each statement
    within moments of its transfer awaiting approval, and the approval handed over at once
    carries the transfer on to delivery: nothing waits for the turn."""
    fast_config(demo.config, poll_seconds=300)
    demo.start()
    folder = demo.root / "state" / "approvals"
    rows = list(GOOD_ROWS)
    for i in range(3):
        demo.drop(f"file-{i}.csv", csv_bytes(rows[i:] + rows[:i]))
    found = demo.wait_state("awaiting_approval", count=3, timeout=_WAIT)
    for t in found:
        tid = str(t["id"])
        wait_for(lambda tid=tid: (folder / tid).exists(), _WAIT, f"the statement of {tid}")
        assert f"transfer: {tid}\n" in (folder / tid).read_text(encoding="utf-8")
    tid = str(found[0]["id"])
    code, _out, err = _approve(demo, tid, "suzuki")
    assert code == 0, err
    assert (folder / f"{tid}.sig.accepted").exists(), "handed to the daemon, not in-process"
    (delivered,) = demo.wait_state("delivered", timeout=_WAIT)
    assert delivered["id"] == tid
