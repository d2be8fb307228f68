"""The approvals folder's domain (gateway.outbound.approval_folder) in process, on a demo
gateway's real state database and ledger, with signatures made by OpenSSH's own
`ssh-keygen -Y sign`: what is published, what counts, and every way an attacker with write
access to the folder (a witness's group) might try to get a signature counted or the daemon
to stumble."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from gateway.identity.sshkeys import load_private_key
from gateway.outbound import approval_folder, approvals
from gateway.outbound.approval_folder import ApprovalFolder, signature_id
from gateway.runtime import Runtime
from gateway.state.lifecycles import State
from gateway.state.rows import Transfer
from tests.conftest import Demo, has_japanese
from tests.gateway.outbound.conftest import awaiting, published

NAMESPACE = "tachiai-approval"


_awaiting = awaiting


def _sign(demo: Demo, path: Path, key: str | Path, namespace: str = NAMESPACE) -> Path:
    key_path = key if isinstance(key, Path) else demo.key(key)
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-n", namespace, "-f", str(key_path),
                    str(path)], check=True, capture_output=True)
    return path.with_name(path.name + ".sig")


def _refusals(rt: Runtime, transfer_id: str) -> list[str]:
    rt.flush()
    return [ev.data["reason"]["rule"] for ev in rt.ledger.events()
            if ev.kind == "approval.refused" and ev.subject == transfer_id]


def _refused_note(folder: ApprovalFolder, t: Transfer) -> str:
    return (folder.folder / f"{t.id}.sig.refused").read_text(encoding="utf-8")


def test_each_statement_awaiting_approval_is_published_as_the_bytes_to_sign(
    rt: Runtime, folder: ApprovalFolder
) -> None:
    t = _awaiting(rt, 1)
    _awaiting(rt, 2, state=State.DELIVERED)  # not awaiting: not published
    folder.poll()
    published = sorted(p.name for p in folder.folder.iterdir())
    assert published == sorted([t.id, "refused"])
    assert (folder.folder / t.id).read_bytes() == approvals.statement(rt, rt.store.get(t.id))
    assert stat.S_IMODE((folder.folder / t.id).stat().st_mode) == 0o640
    assert stat.S_IMODE(folder.folder.stat().st_mode) & 0o1777 == 0o1770  # sticky, group rwx


def test_a_good_signature_is_recorded_as_approve_records_it_and_consumed(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    t = published(rt, folder, 1)
    signature = _sign(demo, folder.folder / t.id, "suzuki")
    text = signature.read_text()
    taken = folder.poll()
    assert taken.accepted == [t.id] and taken.refused == []
    after = rt.store.get(t.id)
    assert after.status is State.APPROVED
    assert [a.signature for a in rt.store.approvals(t.id)] == [text]
    assert approvals.authorize(rt, after, after.sha256 or "", after.size or 0) is None
    assert not signature.exists()  # consumed: the ledger holds it
    kinds = [ev.kind for ev in rt.ledger.events() if ev.subject == t.id]
    assert kinds[-2:] == ["approval.accepted", "transfer.approved"]
    assert not (folder.folder / t.id).exists()  # no longer awaiting: the statement is gone


def _refused(demo: Demo, rt: Runtime, folder: ApprovalFolder, t: Transfer, rule: str) -> str:
    taken = folder.poll()
    assert taken.refused == [t.id] and taken.accepted == []
    assert rt.store.get(t.id).status is State.AWAITING_APPROVAL
    assert rt.store.approvals(t.id) == []
    assert not (folder.folder / f"{t.id}.sig").exists()
    kept = list(folder.refused_dir.glob(f"{t.id}.sig.*"))
    assert len(kept) == 1  # never deleted: kept for whoever looks into it
    note = _refused_note(folder, t)
    assert f"rule: {rule}" in note, note
    reasons = dict(line.split(": ", 1) for line in note.splitlines() if ": " in line)
    assert has_japanese(reasons["理由"]) and not has_japanese(reasons["reason"]), note
    assert rule in _refusals(rt, t.id)
    assert (folder.folder / t.id).exists()  # still awaiting: its statement stays
    return note


def test_a_signature_over_another_transfers_statement_is_refused(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    mine, other = _awaiting(rt, 1), _awaiting(rt, 2)
    folder.poll()
    signed = _sign(demo, folder.folder / other.id, "suzuki")
    os.rename(signed, folder.folder / f"{mine.id}.sig")
    note = _refused(demo, rt, folder, mine, "approval.signature")
    assert "sign exactly this statement again" in note
    assert rt.store.get(other.id).status is State.AWAITING_APPROVAL


def test_a_signature_in_another_namespace_is_refused(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    t = published(rt, folder, 1)
    _sign(demo, folder.folder / t.id, "suzuki", namespace="tachiai-rejection")
    _refused(demo, rt, folder, t, "approval.signature")


def test_the_senders_own_key_an_unknown_key_and_another_partys_are_refused(
    demo: Demo, rt: Runtime, folder: ApprovalFolder, tmp_path: Path
) -> None:
    t = published(rt, folder, 1)
    _sign(demo, folder.folder / t.id, "sato")  # the sender may not witness their own file
    _refused(demo, rt, folder, t, "approval.self")
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True)
    _sign(demo, folder.folder / t.id, stranger)
    taken = folder.poll()
    assert taken.refused == [t.id]
    assert "rule: approval.unknown-key" in _refused_note(folder, t)
    _sign(demo, folder.folder / t.id, "takahashi")  # a handler of the receiving party
    assert folder.poll().refused == [t.id]
    assert "rule: approval.wrong-party" in _refused_note(folder, t)
    assert rt.store.get(t.id).status is State.AWAITING_APPROVAL
    assert rt.store.approvals(t.id) == []
    assert len(list(folder.refused_dir.glob(f"{t.id}.sig.*"))) == 3


def test_a_signature_replayed_after_a_rejection_is_refused_and_the_statement_leaves(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    t = published(rt, folder, 1)
    signature = _sign(demo, folder.folder / t.id, "suzuki")
    saved = signature.read_bytes()
    signature.unlink()
    key = load_private_key(demo.key("tanaka"))
    from gateway.identity import sshsig
    approvals.reject(rt, t.id, sshsig.sign(approvals.statement(
        rt, t, rejection_reason="wrong month"), key, approvals.REJECTION_NAMESPACE),
        "wrong month")
    folder.poll()
    assert not (folder.folder / t.id).exists()
    (folder.folder / f"{t.id}.sig").write_bytes(saved)  # the good signature, dropped late
    taken = folder.poll()
    assert taken.refused == [t.id]
    assert rt.store.get(t.id).status is State.REJECTED
    assert "approval.state" in _refusals(rt, t.id)
    assert list(folder.refused_dir.glob(f"{t.id}.sig.*"))
    folder.poll()
    note = folder.folder / f"{t.id}.sig.refused"
    assert note.exists()  # a while longer, for the witness who reads it
    os.utime(note, (1, 1))  # older than the grace: leaves with its transfer
    folder.poll()
    assert not note.exists()


def test_a_link_a_fifo_a_linked_file_and_a_huge_file_are_refused_unread(
    demo: Demo, rt: Runtime, folder: ApprovalFolder, tmp_path: Path
) -> None:
    link, fifo, hard, huge = (_awaiting(rt, i) for i in range(4))
    folder.poll()
    # A good signature elsewhere: followed, a link would count it.
    good = _sign(demo, folder.folder / link.id, "suzuki")
    elsewhere = tmp_path / "good.sig"
    os.rename(good, elsewhere)
    os.symlink(elsewhere, folder.folder / f"{link.id}.sig")
    os.mkfifo(folder.folder / f"{fifo.id}.sig")  # opened to read, a FIFO would block
    good = _sign(demo, folder.folder / hard.id, "suzuki")
    os.link(good, tmp_path / "other-name.sig")
    with open(folder.folder / f"{huge.id}.sig", "wb") as fh:
        fh.truncate(approval_folder.MAX_SIGNATURE_BYTES + 1)
    taken = folder.poll()
    assert sorted(taken.refused) == sorted([link.id, fifo.id, hard.id, huge.id])
    assert taken.accepted == []
    for t in (link, fifo, hard, huge):
        assert rt.store.get(t.id).status is State.AWAITING_APPROVAL
        assert "approval.file" in _refusals(rt, t.id)
        note = _refused_note(folder, t)
        assert "rule: approval.file" in note
        assert "理由: 署名が" in note or "理由: ファイルが" in note, note
    (kept_link,) = folder.refused_dir.glob(f"{link.id}.sig.*")
    assert kept_link.is_symlink() and elsewhere.read_text().startswith("-----BEGIN")
    (kept_fifo,) = folder.refused_dir.glob(f"{fifo.id}.sig.*")
    assert stat.S_ISFIFO(kept_fifo.lstat().st_mode)


def test_only_exact_id_names_are_taken() -> None:
    good = "t-0123456789ab.sig"
    assert signature_id(good) == "t-0123456789ab"
    assert signature_id("f-0123456789ab.sig") == "f-0123456789ab"
    for name in ("../t-0123456789ab.sig", "t-0123456789ab\0.sig", ".t-0123456789ab.sig",
                 "t-0123456789ab.sig.sig", "t-0123456789ab", "t-0123456789AB.sig",
                 "x/t-0123456789ab.sig", "t-0123456789ab .sig", "notes.sig"):
        assert signature_id(name) is None, name


def test_other_files_are_left_alone_and_an_unknown_id_is_explained(
    demo: Demo, rt: Runtime, folder: ApprovalFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    (folder.folder / "notes.sig").write_text("not ours")
    (folder.folder / "t-0123456789ab.sig").write_text("-----END SSH SIGNATURE-----\n")
    taken = folder.poll()
    assert taken.refused == ["t-0123456789ab"]
    assert (folder.folder / "notes.sig").read_text() == "not ours"
    note = (folder.folder / "t-0123456789ab.sig.refused").read_text(encoding="utf-8")
    assert "approval.unknown" in note
    folder.poll()  # nothing awaits under that id: the note stays a while, then leaves
    assert (folder.folder / "t-0123456789ab.sig.refused").exists()
    monkeypatch.setattr(approval_folder, "NOTE_GRACE_SECONDS", 0.0)
    folder.poll()
    assert not (folder.folder / "t-0123456789ab.sig.refused").exists()
    assert list(folder.refused_dir.glob("t-0123456789ab.sig.*"))


def test_a_statement_that_changes_is_written_again(
    demo: Demo, rt: Runtime, folder: ApprovalFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(approval_folder, "_REFRESH_SECONDS", 0.0)  # every turn, for the test
    t = _awaiting(rt, 1, sha256="cd" * 32)
    folder.poll()
    before = (folder.folder / t.id).read_bytes()
    signature = _sign(demo, folder.folder / t.id, "suzuki")
    stale = signature.read_bytes()
    signature.unlink()
    earlier = _awaiting(rt, 2, state=State.DELIVERED, sha256="cd" * 32)  # same bytes, delivered
    folder.poll()
    after = (folder.folder / t.id).read_bytes()
    assert after != before and f"duplicate-of: {earlier.id}".encode() in after
    assert after == approvals.statement(rt, rt.store.get(t.id))
    (folder.folder / f"{t.id}.sig").write_bytes(stale)  # signed before the change: void
    _refused(demo, rt, folder, t, "approval.signature")


def test_a_signature_still_being_written_waits_for_its_end(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    t = published(rt, folder, 1)
    signature = _sign(demo, folder.folder / t.id, "suzuki")
    whole = signature.read_bytes()
    signature.write_bytes(whole[: len(whole) // 2])  # as ssh-keygen leaves it mid-write
    assert folder.poll().refused == []
    assert signature.exists()
    signature.write_bytes(whole)
    assert folder.poll().accepted == [t.id]


def test_a_half_signature_dated_in_the_future_is_judged_not_waited_for(
    demo: Demo, rt: Runtime, folder: ApprovalFolder
) -> None:
    t = published(rt, folder, 1)
    signature = _sign(demo, folder.folder / t.id, "suzuki")
    whole = signature.read_bytes()
    signature.write_bytes(whole[: len(whole) // 2])
    future = 4102444800  # 2100-01-01: "still being written" for ever, were it believed
    os.utime(signature, (future, future))
    assert folder.poll().refused == [t.id]  # out of the way, kept in refused/
    assert not signature.exists()
    assert rt.store.get(t.id).status is State.AWAITING_APPROVAL


def test_a_signature_a_killed_taker_left_is_given_back_and_taken(
    demo: Demo, rt: Runtime, folder: ApprovalFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = published(rt, folder, 1)
    signature = _sign(demo, folder.folder / t.id, "suzuki")
    left = folder.folder / f".{signature.name}.4242-deadbeef.taking"  # renamed, then killed
    os.rename(signature, left)
    assert folder.poll().accepted == []  # a live taker may still be at it
    monkeypatch.setattr(approval_folder, "_ORPHAN_SECONDS", -1.0)
    assert folder.poll().accepted == [t.id]
    assert not left.exists() and rt.store.get(t.id).status is State.APPROVED


def test_a_link_in_place_of_refused_is_not_followed(
    demo: Demo, rt: Runtime, folder: ApprovalFolder, tmp_path: Path
) -> None:
    t = published(rt, folder, 1)
    folder.refused_dir.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder.refused_dir.symlink_to(elsewhere)
    (folder.folder / f"{t.id}.sig").write_text("-----END SSH SIGNATURE-----\n")
    folder.poll()  # logged, never raised
    assert list(elsewhere.iterdir()) == []
    assert (folder.folder / f"{t.id}.sig").exists()  # given back, for when it is fixed
