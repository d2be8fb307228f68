"""What the daemon is working on (gateway.progress): a large file's step leaves a record while it
runs and none after; a record whose writer is gone is not shown as live; `tachiai status` shows
the records; and the one progress line at a terminal (gateway.cli.progress)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pty
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gateway import faults, progress
from gateway.cli.progress import progress_line
from gateway.faults import PAUSE_ENV, PAUSED_MARK, RESUME_ENV
from gateway.transports import Parcel
from gateway.transports.sftp import SftpTransport
from tests.conftest import GOOD_ROWS, Demo, csv_bytes, read_terminal, wait_for
from tests.gateway.conftest import needs_sshd
from tests.gateway.transports.servers import Sshd


def _record(state: Path, transfer: str, *, pid: int, age: float = 0.0, done: int = 5 << 20
            ) -> Path:
    folder = state / progress.FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time_ns() - int(age * 1e9)
    path = folder / f"{transfer}.json"  # any name: `live` reads every record
    path.write_text(json.dumps({
        "transfer": transfer, "step": "seal", "done": done, "total": 8 << 20,
        "started_ns": now - 2_000_000_000, "updated_ns": now, "owner": "gw-a:1:seal-0",
        "host": os.uname().nodename, "pid": pid}), encoding="utf-8")
    return path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_large_file_read_in_a_step_has_a_record_until_the_step_ends(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * (progress.LARGE + (1 << 20)))
    with progress.step(tmp_path, "t-big", "check", "gw-a:1:check-0"), open(big, "rb") as fh, \
            progress.watched(fh, big.stat().st_size):
        fh.read(1 << 20)
        [live] = wait_for(lambda: progress.live(tmp_path), 30, "the record of the read")
        assert (live.transfer, live.step, live.total) == ("t-big", "check", big.stat().st_size)
        wait_for(lambda: [r for r in progress.live(tmp_path) if r.done == 1 << 20], 30,
                 "the bytes read so far in the record")
        assert live.as_dict()["node"] == "gw-a" and live.as_dict()["worker"] == "check-0"
    assert progress.live(tmp_path) == []
    assert list((tmp_path / progress.FOLDER).iterdir()) == []  # removed, not just ignored


def test_a_small_file_or_no_step_writes_nothing(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.write_bytes(b"x" * 1000)
    with progress.step(tmp_path, "t-small", "seal", "gw-a:1:seal-0"), \
            open(small, "rb") as fh, progress.watched(fh, 1000):
        fh.read()
    big = tmp_path / "big"
    big.write_bytes(b"x" * progress.LARGE)
    with open(big, "rb") as fh, progress.watched(fh, progress.LARGE):  # outside any step
        fh.read()
    assert not (tmp_path / progress.FOLDER).exists()


def test_a_dead_workers_record_is_not_live(tmp_path: Path) -> None:
    _record(tmp_path, "t-dead", pid=_dead_pid())
    _record(tmp_path, "t-silent", pid=os.getpid(), age=progress.STALE_SECONDS + 5)
    _record(tmp_path, "t-live", pid=os.getpid())
    (tmp_path / progress.FOLDER / "t-torn.json").write_text("{\"transfer\":", encoding="utf-8")
    assert [r.transfer for r in progress.live(tmp_path)] == ["t-live"]
    assert progress.remove_stale(tmp_path) == 2  # at a daemon's start: the dead ones only
    assert sorted(p.name for p in (tmp_path / progress.FOLDER).iterdir()) == [
        "t-live.json", "t-torn.json"]


def test_status_shows_live_work_and_not_a_dead_workers(demo: Demo) -> None:
    state = demo.root / "state"
    _record(state, "t-dead", pid=_dead_pid())
    live = _record(state, "t-live", pid=os.getpid())
    [shown] = demo.json("status")["working_on"]
    assert (shown["transfer"], shown["step"], shown["done"], shown["total"], shown["percent"],
            shown["node"], shown["worker"]) == ("t-live", "seal", 5 << 20, 8 << 20, 62, "gw-a",
                                                "seal-0")
    assert shown["rate"] > 0 and shown["elapsed"] >= 2
    text = demo.cli("status", check=True).stdout
    assert "Working on (処理中): 1" in text and "t-live" in text and "62%" in text
    assert "t-dead" not in text
    live.unlink()
    assert demo.json("status")["working_on"] == []
    assert "Working on (処理中): none" in demo.cli("status", check=True).stdout


@pytest.mark.slow
def test_status_shows_a_seal_under_way_then_nothing_once_done(demo: Demo) -> None:
    resume = demo.root / "resume-seal"
    demo.start(env={PAUSE_ENV: "seal-block:600", RESUME_ENV: str(resume)})
    # A file larger than progress.LARGE, so its steps leave a record.
    pair = len(csv_bytes(GOOD_ROWS)) - len(csv_bytes([]))
    data = csv_bytes(GOOD_ROWS * (progress.LARGE // pair + 2))
    assert len(data) > progress.LARGE
    demo.drop("status-change-2026-10.csv", data)
    [waiting] = demo.wait_state("awaiting_approval", timeout=120)
    approved = demo.cli("approve", str(waiting["id"]), "--key", str(demo.key("suzuki")))
    assert approved.returncode == 0, approved.stderr
    wait_for(lambda: PAUSED_MARK in demo.daemon_log(), 120, "the seal to pause")

    def sealing() -> dict[str, object] | None:
        rows = [r for r in demo.json("status")["working_on"] if r["transfer"] == waiting["id"]]
        return rows[0] if rows and rows[0]["step"] == "seal" and rows[0]["done"] > 0 else None

    shown = wait_for(sealing, 120, "status to show the seal under way")
    assert 0 < shown["done"] < shown["total"] == len(data)  # type: ignore[operator]
    assert shown["node"] and shown["worker"]
    resume.touch()
    demo.wait_state("delivered", timeout=120)
    wait_for(lambda: demo.json("status")["working_on"] == [], 60, "the record to go")
    assert list((demo.root / "state" / progress.FOLDER).glob("*.json")) == []
    assert demo.stop() == 0


def _on_a_terminal(write: object) -> bytes:
    main, side = pty.openpty()
    try:
        with os.fdopen(os.dup(side), "w", encoding="utf-8") as stream:
            write(stream)  # type: ignore[operator]
        os.close(side)
        shown = read_terminal(main)
    finally:
        os.close(main)
    return shown


def test_the_progress_line_is_drawn_and_cleared_on_a_terminal() -> None:
    def work(stream: io.TextIOBase) -> None:
        with progress_line(stream, "decrypting", lambda: 3_000_000,  # type: ignore[arg-type]
                           in_bytes=True) as show:
            assert show is not None
            for done in range(0, 3_000_001, 1000):  # many updates: few are drawn
                show(done)

    shown = _on_a_terminal(work)
    assert b"decrypting: 3.0 MB of 3.0 MB (100%)" in shown
    assert shown.count(b"decrypting") < 100  # redrawn a few times a second, not per update
    assert shown.endswith(b"\r\x1b[K")  # erased at the end


def test_no_progress_line_when_not_a_terminal() -> None:
    stream = io.StringIO()
    asked: list[int] = []
    with progress_line(stream, "verifying", lambda: asked.append(1) or 10) as show:
        assert show is None
    assert stream.getvalue() == "" and asked == []


@pytest.mark.slow
@needs_sshd
def test_an_upload_under_way_has_a_record_with_the_bytes_sent(
    sshd: Sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(progress.LARGE + (3 << 20))
    sealed = tmp_path / "sealed.zip"
    sealed.write_bytes(data)
    parcel = Parcel(transfer_id="t-0123456789ab", path=sealed, name="t-0123456789ab.zip",
                    size=len(data), sha256=hashlib.sha256(data).hexdigest(), file_name="x.csv")
    resume = tmp_path / "resume"
    monkeypatch.setenv(PAUSE_ENV, "upload-block:600")
    monkeypatch.setenv(RESUME_ENV, str(resume))
    monkeypatch.setattr(faults, "_paused", set())
    state = tmp_path / "state"
    state.mkdir()
    inbox = sshd.folder("inbox")
    failed: list[BaseException] = []

    def deliver() -> None:
        try:
            with progress.step(state, parcel.transfer_id, "deliver", "gw-a:1:deliver-isa"):
                SftpTransport("isa", sshd.endpoint(inbox)).send(parcel)
        except BaseException as exc:  # reported by the test below
            failed.append(exc)

    worker = threading.Thread(target=deliver)
    worker.start()
    try:
        [shown] = wait_for(lambda: [r for r in progress.live(state) if r.done > 0], 120,
                           "the upload's record")
        assert (shown.transfer, shown.step) == (parcel.transfer_id, "deliver")
        assert 0 < shown.done < shown.total == len(data)
    finally:
        resume.touch()
        worker.join(timeout=300)
    assert not failed, failed
    assert (inbox / parcel.name).read_bytes() == data
    assert progress.live(state) == [] and list((state / progress.FOLDER).iterdir()) == []
