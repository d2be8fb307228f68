"""Handing a signature to the running daemon (gateway.outbound.handover), the witness's side
against the daemon's own folder code run in this process (gateway.outbound.approval_folder) on
a demo gateway's real state, with signatures made by OpenSSH's ssh-keygen: the statement is
checked as ID's before anything is signed, a signature never replaces another, and the verdict
read is the one on this signature, never an earlier note."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import CheckFailed, SignatureError, StateError, StorageError
from gateway.exchange.words import APPROVAL_NAMESPACE
from gateway.identity import sshsig
from gateway.outbound import approval_folder, approval_notes, approvals, handover
from gateway.outbound.approval_folder import ApprovalFolder
from gateway.runtime import Runtime
from gateway.state import clock, daemon_lock
from gateway.state.lifecycles import State
from gateway.state.rows import Transfer
from tests.conftest import Demo
from tests.gateway.outbound.conftest import awaiting, published

_awaiting = awaiting


def _hand(demo: Demo, folder: ApprovalFolder, t: Transfer, key: str) -> handover.Handed:
    text = handover.published(folder.folder, t.id)
    assert text is not None
    signature = handover.sign(text, demo.key(key))
    assert signature is not None
    return handover.hand_over(folder.folder, t.id, signature)


@contextlib.contextmanager
def _daemon_turns(folder: ApprovalFolder, *, regular: bool = True) -> Iterator[None]:
    """The daemon, in this process: its lock held and its folder's turns taken in a thread."""
    stop = threading.Event()

    def turns() -> None:
        while not stop.is_set():
            folder.poll(regular=regular)
            stop.wait(0.02)

    thread = threading.Thread(target=turns)
    settings = folder.rt.settings
    with daemon_lock.acquire(settings.state_dir, settings.daemon_lock_file):
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def test_only_the_statement_of_the_id_is_signed(rt: Runtime, folder: ApprovalFolder,
                                                 tmp_path: Path) -> None:
    a, b = _awaiting(rt, 1), _awaiting(rt, 2)
    assert handover.published(folder.folder, a.id) is None  # not published yet
    folder.poll()
    own = handover.published(folder.folder, a.id)
    assert own is not None and f"transfer: {a.id}\n".encode() in own
    os.replace(folder.folder / b.id, folder.folder / a.id)  # b's statement under a's name
    with pytest.raises(CheckFailed, match=r"approval\.statement"):
        handover.published(folder.folder, a.id)
    # Both ids in one statement, a wrong head, a link, a FIFO, a huge file: all refused.
    text = (folder.folder / a.id).read_bytes()
    for planted in (text + f"transfer: {a.id}\n".encode(),
                    text.replace(f"transfer: {b.id}".encode(), f"transfer: {a.id}".encode())
                    .replace(b"approval statement", b"rejection statement"),
                    b"x" * (handover.MAX_STATEMENT_BYTES + 1)):
        (folder.folder / a.id).write_bytes(planted)
        with pytest.raises(CheckFailed, match=r"approval\.statement"):
            handover.published(folder.folder, a.id)
    (folder.folder / a.id).unlink()
    os.symlink(tmp_path / "elsewhere", folder.folder / a.id)
    with pytest.raises(CheckFailed, match=r"approval\.statement"):
        handover.published(folder.folder, a.id)
    (folder.folder / a.id).unlink()
    os.mkfifo(folder.folder / a.id)
    with pytest.raises(CheckFailed, match=r"approval\.statement"):
        handover.published(folder.folder, a.id)


def test_a_counted_signature_is_read_from_its_own_note(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    t = published(rt, folder, 1)
    handed = _hand(demo, folder, t, "suzuki")
    with pytest.raises(StateError, match="waits in"):  # the daemon has not had its turn
        handover.verdict(folder.folder, t.id, handed, wait_seconds=0.2)
    assert folder.poll().accepted == [t.id]
    counted = handover.verdict(folder.folder, t.id, handed, wait_seconds=5)
    assert counted == handover.Counted("suzuki", 1, 1, True, 1)
    assert rt.store.get(t.id).status is State.APPROVED


def test_a_refusal_is_this_signatures_never_an_earlier_one(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    t = published(rt, folder, 1)
    first = _hand(demo, folder, t, "sato")  # the sender
    folder.poll()
    with pytest.raises(CheckFailed, match=r"approval\.self"):
        handover.verdict(folder.folder, t.id, first, wait_seconds=5)
    # The first refusal's note is still there while the next signature waits: not its verdict.
    second = _hand(demo, folder, t, "yamada")  # another party's witness
    with pytest.raises(StateError, match="waits in"):
        handover.verdict(folder.folder, t.id, second, wait_seconds=0.2)
    folder.poll()
    with pytest.raises(CheckFailed) as again:
        handover.verdict(folder.folder, t.id, second, wait_seconds=5)
    assert "approval.self" not in str(again.value)
    # A signature over other bytes is refused as the in-process approval refuses it.
    (folder.folder / t.id).write_bytes(b"tachiai approval statement v1\ntransfer: "
                                       + t.id.encode() + b"\nsize: 1\n")
    third = _hand(demo, folder, t, "suzuki")
    folder.poll()
    with pytest.raises(SignatureError, match=r"approval\.signature") as changed:
        handover.verdict(folder.folder, t.id, third, wait_seconds=5)
    assert "sign exactly this statement again" in changed.value.hint  # the fix, from the note
    assert rt.store.get(t.id).status is State.AWAITING_APPROVAL
    assert len(list(folder.refused_dir.iterdir())) == 3


def test_a_signature_never_replaces_one_that_waits(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    t = published(rt, folder, 1)
    waiting = folder.folder / f"{t.id}.sig"
    waiting.write_bytes(b"another witness's signature, not yet taken\n")
    text = handover.published(folder.folder, t.id)
    assert text is not None
    signature = handover.sign(text, demo.key("suzuki"))
    assert signature is not None
    with pytest.raises(StorageError, match="in the way"):
        handover.hand_over(folder.folder, t.id, signature, wait_seconds=0.3)
    assert waiting.read_bytes() == b"another witness's signature, not yet taken\n"
    assert [p.name for p in folder.folder.iterdir() if p.name.endswith(".tmp")] == []


def test_whether_a_daemon_holds_the_state_folder_is_read_without_taking_the_lock(
    tmp_path: Path
) -> None:
    assert daemon_lock.held(tmp_path) is False  # never ran here
    with daemon_lock.acquire(tmp_path):
        assert daemon_lock.held(tmp_path) is True
        assert daemon_lock.held(tmp_path, "daemon.other-node.lock") is False
    assert daemon_lock.held(tmp_path) is False  # the file stays; the lock is gone
    with daemon_lock.acquire(tmp_path):  # and asking never kept a daemon from starting
        pass


def test_the_notes_are_read_back_as_written() -> None:
    refused = approval_notes.fields(approval_notes.refused_note(
        "t-0123456789ab.sig", "t-0123456789ab.sig.17", "approval.self",
        "refused: the sender cannot witness their own transfer [approval.self]", "sign again")
        .decode())
    assert refused["rule"] == "approval.self" and refused["fix"] == "sign again"
    assert approval_notes.kept_name(refused) == "t-0123456789ab.sig.17"
    assert approval_notes.kept_name({"file": "t-0123456789ab.sig → refused/../x"}) is None
    accepted = approval_notes.fields(approval_notes.accepted_note(
        "t-0123456789ab.sig", witness="suzuki", count=1, needed=2, state="awaiting_approval",
        parts=1, signature_sha256="ab" * 32).decode())
    assert (accepted["witness"], accepted["approvals"], accepted["needed"]) == ("suzuki", "1", "2")
    assert accepted["signature-sha256"] == "ab" * 32


def test_a_statement_that_changed_since_it_was_published_is_signed_as_it_is_now(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    t = published(rt, folder, 1)
    as_published = (folder.folder / t.id).read_bytes()
    # Its bytes are delivered meanwhile as another transfer: the statement gains its
    # duplicate-of line, and the folder still shows the old one.
    now = clock.now_ns()
    rt.store.create(dataclasses.replace(t, id=f"t-{(now + 7) % (1 << 48):012x}",
                                        state=State.DELIVERED.value, created_ns=now,
                                        updated_ns=now), [])
    assert approvals.statement(rt, rt.store.get(t.id)) != as_published
    # As in the command's own process: refused for the duplicate, not for old bytes.
    with _daemon_turns(folder), pytest.raises(CheckFailed, match=r"approval\.duplicate-file"):
        handover.approve(rt.settings.places, t.id, demo.key("suzuki"), wait_seconds=30)
    assert b"duplicate-of: " in (folder.folder / t.id).read_bytes()
    rt.flush()
    rules = [ev.data["reason"]["rule"] for ev in rt.ledger.events()
             if ev.kind == "approval.refused" and ev.subject == t.id]
    assert rules == ["approval.signature", "approval.duplicate-file"]


def test_a_designation_ended_while_the_daemon_runs_counts_at_once(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    first, second = _awaiting(rt, 1), _awaiting(rt, 2)
    folder.poll()
    handed = _hand(demo, folder, first, "suzuki")
    folder.poll()
    assert handover.verdict(folder.folder, first.id, handed, wait_seconds=5).witness == "suzuki"
    registry = demo.root / "demo" / "registry.toml"
    text = registry.read_text(encoding="utf-8")
    ended = (dt.date.today() - dt.timedelta(days=2)).isoformat()
    text, n = re.subn(r'(name = "suzuki"\n(?:.+\n)*?designated_from = .+\n)',
                      rf"\1designated_until = {ended}\n", text)
    assert n == 1
    registry.write_text(text, encoding="utf-8")
    handed = _hand(demo, folder, second, "suzuki")
    folder.poll()
    with pytest.raises(CheckFailed, match=r"approval\.not-designated"):
        handover.verdict(folder.folder, second.id, handed, wait_seconds=5)
    # A registry broken meanwhile: signatures wait, none is judged on the old one.
    registry.write_text("[[handlers]]\nname = 1\n", encoding="utf-8")
    handed = _hand(demo, folder, second, "tanaka")
    folder.poll()
    assert (folder.folder / f"{second.id}.sig").exists()
    assert rt.store.get(second.id).status is State.AWAITING_APPROVAL


def test_a_turn_woken_by_a_signature_takes_it_and_leaves_the_ledger_to_the_regular_turn(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    t = published(rt, folder, 1)
    rt.flush()
    handed = _hand(demo, folder, t, "suzuki")
    assert folder.poll(regular=False).accepted == [t.id]
    assert handover.verdict(folder.folder, t.id, handed, wait_seconds=5).approved
    assert rt.store.get(t.id).status is State.APPROVED
    kinds = [ev.kind for ev in rt.ledger.events() if ev.subject == t.id]
    assert "approval.accepted" not in kinds  # committed with the approval, not yet moved
    assert not (folder.folder / t.id).exists()  # approved: nothing left to sign
    folder.poll()
    kinds = [ev.kind for ev in rt.ledger.events() if ev.subject == t.id]
    assert kinds[-2:] == ["approval.accepted", "transfer.approved"]


# A witness of the folder's group writes files there under their own account: the daemon's
# files are the folder owner's, one name each, writable by no one else. Root runs these tests
# and stands in for the daemon's account; `nobody` for another witness.
_OTHER_WITNESS = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="makes files of another account")
def test_a_statement_a_witness_wrote_is_never_signed(rt: Runtime, folder: ApprovalFolder) -> None:
    t = published(rt, folder, 1)
    path = folder.folder / t.id
    text = path.read_bytes()
    # The daemon's own, word for word, but another witness's file: planted before it was
    # published (or where it cannot be published), so not the daemon's.
    os.chown(path, _OTHER_WITNESS, -1)
    with pytest.raises(CheckFailed, match=r"approval\.statement"):
        handover.published(folder.folder, t.id)
    os.chown(path, os.getuid(), -1)
    assert handover.published(folder.folder, t.id) == text
    os.chmod(path, 0o660)  # writable by the group: anyone of it could have changed it
    with pytest.raises(CheckFailed, match=r"approval\.statement"):
        handover.published(folder.folder, t.id)
    os.chmod(path, 0o640)
    os.link(path, folder.folder / "another-name")  # two names: one may be elsewhere
    with pytest.raises(CheckFailed, match=r"approval\.statement"):
        handover.published(folder.folder, t.id)


@pytest.mark.skipif(os.geteuid() != 0, reason="makes files of another account")
def test_a_forged_acceptance_is_never_believed(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    t = published(rt, folder, 1)
    handed = _hand(demo, folder, t, "sato")  # the sender's own key: refused when judged
    # Another witness reads the handed signature (the group may), forges the daemon's note
    # that counts it, and takes it away before the daemon's turn.
    forged = folder.folder / f"{t.id}{approval_notes.ACCEPTED_SUFFIX}"
    forged.write_text(approval_notes.accepted_note(
        "x", witness="sato", count=1, needed=1, state="approved", parts=1,
        signature_sha256=handed.sha256).decode("utf-8"), encoding="utf-8")
    os.chown(forged, _OTHER_WITNESS, -1)
    os.chmod(forged, 0o640)
    os.rename(folder.folder / f"{t.id}.sig", folder.folder.parent / "taken-away.sig")
    with pytest.raises(StateError, match="verdict was not found"):
        handover.verdict(folder.folder, t.id, handed, wait_seconds=0.3)
    # A file of another account on the freed inode is not ours either.
    moved = folder.folder.parent / "taken-away.sig"
    os.chown(moved, _OTHER_WITNESS, -1)
    os.rename(moved, folder.folder / f"{t.id}.sig")
    with pytest.raises(StateError, match="verdict was not found"):
        handover.verdict(folder.folder, t.id, handed, wait_seconds=0.3)


def test_nothing_in_a_folder_witnesses_can_rearrange_is_trusted(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    t = published(rt, folder, 1)
    assert handover.published(folder.folder, t.id) is not None
    os.chmod(folder.folder, 0o2770)  # not sticky: a witness may replace the daemon's files
    assert handover.published(folder.folder, t.id) is None  # approved in-process instead
    os.chmod(folder.folder, 0o3777)  # writable by anyone
    assert handover.published(folder.folder, t.id) is None
    folder.prepare()  # the daemon makes its own folder 3770 again at start
    assert handover.published(folder.folder, t.id) is not None


def test_one_ssh_keygen_run_signs_each_statement_as_its_own(demo: Demo) -> None:
    named = {f"t-00000000000{n}": f"{handover.STATEMENT_HEAD}\ntransfer: t-00000000000{n}\n"
             .encode() for n in range(3)}
    statements = list(named.values())
    signatures = handover.sign_each(named, demo.key("suzuki"))
    assert signatures is not None and len(signatures) == 3
    for n, signature in enumerate(signatures):
        for m, statement in enumerate(statements):
            if m == n:
                assert sshsig.verify(statement, signature, APPROVAL_NAMESPACE).fingerprint
            else:  # each signature is over its own statement, in the order given
                with pytest.raises(SignatureError):
                    sshsig.verify(statement, signature, APPROVAL_NAMESPACE)
    assert handover.sign_each(named, demo.root / "no-such-key") is None


def test_several_are_handed_over_and_each_verdict_is_its_own(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    a, b, c = (_awaiting(rt, n) for n in (1, 2, 3))
    folder.poll()
    # a's name holds b's statement (a file of the daemon's account, as the daemon writes):
    # a is refused before signing; b and c are signed by one ssh-keygen run and counted.
    (folder.folder / a.id).write_bytes((folder.folder / b.id).read_bytes())
    with _daemon_turns(folder, regular=False):
        outcomes = handover.approve_each(rt.settings.places, [a.id, b.id, c.id], demo.key("suzuki"),
                                         wait_seconds=60)
    assert outcomes is not None
    assert [ident for ident, _outcome in outcomes] == [a.id, b.id, c.id]
    refused = outcomes[0][1]
    assert isinstance(refused, CheckFailed) and "approval.statement" in str(refused)
    assert outcomes[1][1] == outcomes[2][1] == handover.Counted("suzuki", 1, 1, True, 1)
    assert [rt.store.get(t.id).status for t in (a, b, c)] == [
        State.AWAITING_APPROVAL, State.APPROVED, State.APPROVED]
    assert not (folder.folder / f"{a.id}.sig").exists()
    assert not list((folder.folder / approval_notes.REFUSED).iterdir())


def test_several_are_approved_in_process_unless_every_statement_is_published(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    a = published(rt, folder, 1)
    b = _awaiting(rt, 2)  # not published yet
    settings = rt.settings
    with daemon_lock.acquire(settings.state_dir, settings.daemon_lock_file):
        assert handover.approve_each(settings.places, [a.id, b.id], demo.key("suzuki")) is None
        assert handover.approve_each(settings.places, [a.id, a.id], demo.key("suzuki")) is None
    assert handover.approve_each(settings.places, [a.id], demo.key("suzuki")) is None  # no daemon
    assert not [p for p in folder.folder.iterdir() if p.name.endswith(".sig")]


def test_a_hand_over_in_the_way_costs_the_others_no_wait(
    demo: Demo, rt: Runtime, folder: ApprovalFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = (_awaiting(rt, n) for n in (1, 2, 3))
    folder.poll()
    # A signature still being written sits where b's goes: the daemon leaves it alone a while
    # (here longer than the test can take, however busy the machine).
    monkeypatch.setattr(approval_folder, "_WRITING_SECONDS", 600.0)
    (folder.folder / f"{b.id}.sig").write_bytes(b"-----BEGIN SSH SIGNATURE-----\n")
    with _daemon_turns(folder, regular=False):
        outcomes = handover.approve_each(rt.settings.places, [a.id, b.id, c.id], demo.key("suzuki"),
                                         wait_seconds=5)
    assert outcomes is not None
    kinds = {ident: outcome for ident, outcome in outcomes}
    assert isinstance(kinds[b.id], StorageError) and "in the way" in str(kinds[b.id])
    # c was handed over after b's wait ran out, and still had its own wait for the verdict.
    assert kinds[a.id] == kinds[c.id] == handover.Counted("suzuki", 1, 1, True, 1)


def test_without_the_daemons_turns_each_verdict_is_pending_not_refused(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    a, b = _awaiting(rt, 1), _awaiting(rt, 2)
    folder.poll()
    settings = rt.settings
    with daemon_lock.acquire(settings.state_dir, settings.daemon_lock_file):
        outcomes = handover.approve_each(settings.places, [a.id, b.id], demo.key("suzuki"),
                                         wait_seconds=0.5)
    assert outcomes is not None
    assert all(isinstance(outcome, handover.VerdictPending) for _ident, outcome in outcomes)
    assert all((folder.folder / f"{t.id}.sig").exists() for t in (a, b))  # they wait there
    assert folder.poll(regular=False).accepted == [a.id, b.id]  # and count when taken


def test_the_same_signature_handed_again_is_refused_whatever_the_acceptance_note_says(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    t = published(rt, folder, 1)
    text = handover.published(folder.folder, t.id)
    assert text is not None
    signature = handover.sign(text, demo.key("suzuki"))
    assert signature is not None
    first = handover.hand_over(folder.folder, t.id, signature)
    folder.poll(regular=False)
    assert handover.verdict(folder.folder, t.id, first, wait_seconds=5).approved
    # The same bytes again (an ed25519 signature of one statement is always the same): refused
    # for the state, and its note then gone (replaced by another's refusal, say). The note
    # of the first, which names these very bytes, is not this one's verdict.
    again = handover.hand_over(folder.folder, t.id, signature)
    assert again.sha256 == first.sha256
    assert folder.poll(regular=False).refused == [t.id]
    (folder.folder / f"{t.id}{approval_notes.NOTE_SUFFIX}").unlink()
    assert (folder.folder / f"{t.id}{approval_notes.ACCEPTED_SUFFIX}").exists()
    with pytest.raises(CheckFailed, match="refused the signature"):
        handover.verdict(folder.folder, t.id, again, wait_seconds=5)
