"""Intake as an attacker and a careless writer would test it: links, FIFOs, folders, oversize
files, hard links, odd names, and a slow writer that must never be read half-way."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from gateway.exchange.uploads import is_upload_name
from gateway.outbound.intake import IntakeTracker, Outbox, open_for_writing
from tests.conftest import GOOD_ROWS, Demo, csv_bytes, fast_config, wait_for

pytestmark = pytest.mark.slow


def _only_rejected(demo: Demo) -> dict[str, object]:
    (transfer,) = demo.wait_state("rejected")
    return transfer


def test_symlink_is_refused_and_kept_without_following_it(demo: Demo, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_bytes(csv_bytes(GOOD_ROWS))
    demo.start()
    os.symlink(secret, demo.outbox / "link.csv")
    transfer = _only_rejected(demo)
    assert transfer["reasons"][0]["rule"] == "intake.symlink"
    kept = demo.spool / str(transfer["id"]) / "dropped"
    assert kept.is_symlink(), "the link itself is quarantined"
    assert transfer["sha256"] is None, "nothing was read through the link"
    assert secret.exists()


def test_fifo_is_refused_without_blocking(demo: Demo) -> None:
    demo.start()
    os.mkfifo(demo.outbox / "pipe.csv")
    transfer = _only_rejected(demo)
    assert transfer["reasons"][0]["rule"] == "intake.fifo"
    # The daemon did not hang on the FIFO: it still takes in a good file.
    demo.drop("good.csv", csv_bytes(GOOD_ROWS))
    demo.wait_state("awaiting_approval")


def test_directory_is_refused(demo: Demo) -> None:
    demo.start()
    (demo.outbox / "folder").mkdir()
    transfer = _only_rejected(demo)
    assert transfer["reasons"][0]["rule"] == "intake.directory"


def test_hard_link_is_refused(demo: Demo, tmp_path: Path) -> None:
    original = demo.root / "elsewhere.csv"
    original.write_bytes(csv_bytes(GOOD_ROWS))
    demo.start()
    os.link(original, demo.outbox / "linked.csv")
    transfer = _only_rejected(demo)
    assert transfer["reasons"][0]["rule"] == "intake.hardlink"


def test_oversize_file_is_refused_and_kept(demo: Demo) -> None:
    fast_config(demo.config, max_file_size=100)
    data = csv_bytes(GOOD_ROWS)
    demo.start()
    demo.drop("big.csv", data)
    transfer = _only_rejected(demo)
    assert transfer["reasons"][0]["rule"] == "intake.too-large"
    assert (demo.spool / str(transfer["id"]) / "dropped").read_bytes() == data


def test_upload_names_are_left_until_renamed(demo: Demo) -> None:
    demo.start()
    part = demo.outbox / "data.csv.part"
    part.write_bytes(csv_bytes(GOOD_ROWS))
    time.sleep(1.5)
    assert demo.transfers() == [], "a *.part file is still being uploaded"
    os.replace(part, demo.outbox / "data.csv")
    demo.wait_state("awaiting_approval")


def test_spool_copy_is_private_and_the_dropped_entry_is_released(demo: Demo) -> None:
    demo.start()
    demo.drop("a.csv", csv_bytes(GOOD_ROWS))
    (transfer,) = demo.wait_state("awaiting_approval")
    folder = demo.spool / str(transfer["id"])
    assert sorted(p.name for p in folder.iterdir()) == ["payload"]
    assert (folder / "payload").stat().st_mode & 0o077 == 0


def test_slow_writer_is_never_read_half_way(demo: Demo) -> None:
    """A writer that pauses longer than the settle time with the file still open."""
    data = csv_bytes(GOOD_ROWS * 200)
    demo.start()
    target = demo.outbox / "slow.csv"
    with open(target, "wb") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        time.sleep(2.0)  # five settle periods with the file open for writing
        assert demo.transfers() == [], "a file open for writing must not be taken in"
        fh.write(data[len(data) // 2:])
    (transfer,) = demo.wait_state("awaiting_approval")
    assert transfer["sha256"] == hashlib.sha256(data).hexdigest()


def test_upload_name_rules() -> None:
    assert is_upload_name(".hidden.csv") and is_upload_name("x.csv.part")
    assert is_upload_name("x.csv.tmp") and is_upload_name("x.csv~")
    assert not is_upload_name("x.csv") and not is_upload_name("part.csv")


def test_open_for_writing_sees_a_writer_in_another_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "f"
    path.write_bytes(b"x")
    ino = path.stat().st_ino
    child = subprocess.Popen([sys.executable, "-c", f"f=open({str(path)!r},'ab'); "
                              "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        wait_for(lambda: ino in open_for_writing({ino}), 60, "the writer's open file")
    finally:
        child.communicate(b"")
    assert ino not in open_for_writing({ino})
    reader = subprocess.Popen([sys.executable, "-c", f"f=open({str(path)!r},'rb'); "
                               "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        wait_for(lambda: _holds_open(reader.pid, path), 60, "the reader's open file")
        assert ino not in open_for_writing({ino}), "a reader is not a writer"
    finally:
        reader.communicate(b"")


def _holds_open(pid: int, path: Path) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                return True
    return False


def test_tracker_waits_for_the_settle_time(tmp_path: Path) -> None:
    box = Outbox("a", "f", tmp_path)
    tracker = IntakeTracker([box], settle_seconds=1.0)
    (tmp_path / "x.csv").write_bytes(b"1")
    tracker.scan()
    assert tracker.ready() == []
    time.sleep(1.05)
    assert [p.name for _, p in tracker.ready()] == ["x.csv"]
    stop = threading.Event()

    def keep_touching() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            (tmp_path / "y.csv").write_bytes(b"1" * n)
            time.sleep(0.05)

    worker = threading.Thread(target=keep_touching)
    worker.start()
    try:
        time.sleep(0.5)
        tracker.scan()
        time.sleep(1.2)  # past the settle time: only a file that kept changing is not ready
        assert "y.csv" not in [p.name for _, p in tracker.ready()], "a changing file waits"
    finally:
        stop.set()
        worker.join()


def test_asking_what_settled_does_not_wake_the_asker(tmp_path: Path) -> None:
    """The daemon's loop asks `ready` at every turn and waits on `wake`: a wake set by the
    asking itself would turn the settle time into a busy loop."""
    box = Outbox("a", "f", tmp_path)
    tracker = IntakeTracker([box], settle_seconds=60)
    (tmp_path / "x.csv").write_bytes(b"1")
    tracker.scan()
    assert tracker.wake.is_set(), "a new file wakes the loop"
    tracker.wake.clear()
    assert tracker.ready() == []
    assert not tracker.wake.is_set()
    (tmp_path / "x.csv").write_bytes(b"12")  # changed: its settle clock restarts, still no wake
    assert tracker.ready() == []
    assert not tracker.wake.is_set()
    tracker.note(tmp_path / "x.csv")  # as the watcher does
    assert tracker.wake.is_set()


def _written_before(path: Path, data: bytes, seconds_ago: float) -> None:
    path.write_bytes(data)
    then = time.time() - seconds_ago
    os.utime(path, (then, then))


def test_a_file_renamed_in_long_after_its_last_write_has_settled_when_seen(tmp_path: Path) -> None:
    """A file renamed in long after its last write has settled when it appears (its mtime
    that much older than its ctime); one written in place (or dated in the future, or marked
    unfinished with an mtime of 0) waits the whole settle time; an old file still open for
    writing waits for its writer; a change after a file was seen restarts its settle time,
    whatever its mtime says."""
    import subprocess
    import sys

    box_dir, staging = tmp_path / "outbox", tmp_path / "staging"
    box_dir.mkdir()
    staging.mkdir()
    tracker = IntakeTracker([Outbox("a", "f", box_dir)], settle_seconds=60)
    _written_before(staging / "old.csv", b"1\n", 120)
    os.rename(staging / "old.csv", box_dir / "old.csv")  # mv keeps the mtime, sets the ctime
    (box_dir / "fresh.csv").write_bytes(b"1\n")
    _written_before(box_dir / "future.csv", b"1\n", -3600)
    _written_before(box_dir / "held.csv", b"1\n", 120)
    # What rsync --partial keeps of a cut transfer: the part, renamed in, its mtime set to 0.
    _written_before(staging / "cut.csv", b"1\n", time.time())
    os.rename(staging / "cut.csv", box_dir / "cut.csv")
    writer = subprocess.Popen([sys.executable, "-c", f"f=open({str(box_dir / 'held.csv')!r},"
                               "'ab'); import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        ino = (box_dir / "held.csv").stat().st_ino
        wait_for(lambda: ino in open_for_writing({ino}), 60, "the writer's open file")
        tracker.scan()
        asked = time.monotonic()
        assert [p.name for _, p in tracker.ready()] == ["old.csv"]
        tracker.forget(box_dir / "old.csv")  # as the daemon does with what it takes in
        # Held open: looked at again in half a second, not at every turn of the loop (unless
        # half a second has passed since the asking: a busy machine).
        left = tracker.next_deadline()
        assert left is not None and left <= 0.5
        assert left > 0 or time.monotonic() - asked >= 0.5
    finally:
        writer.communicate(b"")
    # Its writer gone: ready at the next look.
    ready = wait_for(tracker.ready, 60, "the held file, its writer gone")
    assert [p.name for _, p in ready] == ["held.csv"]
    tracker.scan()  # seen anew (an intake that failed): still settled
    assert sorted(p.name for _, p in tracker.ready()) == ["held.csv", "old.csv"]
    with open(box_dir / "old.csv", "ab") as fh:  # written again: it waits again
        fh.write(b"2\n")
    _written_before(box_dir / "held.csv", b"1\n2\n", 120)  # grown, its old mtime set again
    assert tracker.ready() == [], "a change after it was seen restarts the settle time"


def test_a_file_renamed_in_long_after_it_was_written_is_taken_in_at_once(demo: Demo) -> None:
    """With a settle time of five minutes, a file written elsewhere and renamed in is taken
    in when it appears; one written into the outbox in place is not, meanwhile."""
    fast_config(demo.config, settle_seconds=300)
    demo.start()
    (demo.outbox / "in-place.csv").write_bytes(csv_bytes(GOOD_ROWS))
    staging = demo.root / "staging"
    staging.mkdir(exist_ok=True)
    _written_before(staging / "exported.csv", csv_bytes(GOOD_ROWS[:1]), 600)
    os.rename(staging / "exported.csv", demo.outbox / "exported.csv")
    (transfer,) = demo.wait_state("awaiting_approval", timeout=120)
    assert transfer["file_name"] == "exported.csv"
    assert (demo.outbox / "in-place.csv").exists(), "written in place: it waits its settle time"
    assert len(demo.transfers()) == 1
