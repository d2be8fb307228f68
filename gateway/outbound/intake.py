"""Finds dropped files in the flows' outboxes and says when each is complete.

A file is ready when its size, mtime, inode and ctime have not changed for `settle_seconds`
and no process has it open for writing (checked in /proc where we may look). A file that
arrives already settled is ready at once: one whose mtime is at least `settle_seconds` older
than its ctime when it is first seen, as `mv` leaves a file written elsewhere
(`settled_for`). inotify events (watchdog)
only make us look sooner; a periodic scan finds what events miss (an overflowed queue, files
present at start-up). Names that writers use while uploading (dotfiles, *.part, *.tmp) are left
alone until renamed. This module decides readiness; it never moves or reads a file's content.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from gateway.exchange.uploads import is_upload_name

log = logging.getLogger(__name__)

_WRITE_MODES = (os.O_WRONLY, os.O_RDWR)
#: A settled file some process still has open for writing is looked at again after this.
_BUSY_RECHECK_SECONDS = 0.5


@dataclass(frozen=True)
class Outbox:
    """The drop folder (送信フォルダ) of one flow of one agreement."""

    agreement: str
    flow: str
    path: Path


@dataclass
class _Seen:
    outbox: Outbox
    signature: tuple[int, int, int, int]
    changed_at: float


class IntakeTracker:
    """Keeps the candidates of every outbox and hands out those that have settled."""

    def __init__(self, outboxes: Iterable[Outbox], settle_seconds: float) -> None:
        self.outboxes = tuple(outboxes)
        self.settle = settle_seconds
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self._seen: dict[Path, _Seen] = {}
        self._observer: Observer | None = None  # type: ignore[valid-type]

    def start_watching(self, also: Mapping[Path, Callable[[Path], None]] | None = None) -> None:
        """Start inotify watches on every outbox (a scan still runs as a safety net), and on
        each folder of `also`, whose callable is given the path of each file closed after
        writing or moved in there (the approvals folder: a signature handed over wakes the loop
        at once)."""
        observer = Observer()
        handler = _Handler(self)
        for box in self.outboxes:
            observer.schedule(handler, str(box.path), recursive=False,
                              event_filter=[FileClosedEvent, FileCreatedEvent, FileMovedEvent,
                                            DirCreatedEvent])
        for folder, seen in (also or {}).items():
            observer.schedule(_Calling(seen), str(folder), recursive=False,
                              event_filter=[FileClosedEvent, FileMovedEvent])
        observer.daemon = True
        observer.start()
        self._observer = observer

    def stop_watching(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def scan(self) -> None:
        """Look at every entry of every outbox."""
        for box in self.outboxes:
            try:
                names = os.listdir(box.path)
            except OSError as exc:
                log.warning("cannot list outbox %s: %s", box.path, exc.strerror)
                continue
            for name in names:
                self.note(box.path / name)

    def note(self, path: Path, *, wake: bool = True) -> None:
        """Record (or refresh) a candidate; called from the watcher thread and scans (and,
        without `wake`, by `ready`: the loop that asks must not wake itself, or it would
        spin until the file settles)."""
        box = next((b for b in self.outboxes if b.path == path.parent), None)
        if box is None or is_upload_name(path.name):
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            with self._lock:
                self._seen.pop(path, None)
            return
        signature = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
        with self._lock:
            seen = self._seen.get(path)
            if seen is None:
                self._seen[path] = _Seen(box, signature, time.monotonic() - settled_for(st))
            elif seen.signature != signature:
                self._seen[path] = _Seen(box, signature, time.monotonic())
        if wake:
            self.wake.set()

    def ready(self) -> list[tuple[Outbox, Path]]:
        """Candidates that have settled and that nobody is writing, oldest first."""
        now = time.monotonic()
        for path in list(self._seen):
            self.note(path, wake=False)  # refresh: a change restarts the settle clock
        with self._lock:
            settled = [(p, s) for p, s in self._seen.items() if now - s.changed_at >= self.settle]
        if not settled:
            return []
        busy = open_for_writing({(s.signature[2]) for _, s in settled})
        out = []
        for path, seen in sorted(settled, key=lambda item: item[1].changed_at):
            if seen.signature[2] in busy:
                # Looked at again in a while, not at every turn: each look reads all of /proc.
                seen.changed_at = max(seen.changed_at, now - self.settle + _BUSY_RECHECK_SECONDS)
                continue
            out.append((seen.outbox, path))
        return out

    def forget(self, path: Path) -> None:
        with self._lock:
            self._seen.pop(path, None)

    def next_deadline(self) -> float | None:
        """Seconds until the earliest candidate could settle, if any is waiting."""
        with self._lock:
            if not self._seen:
                return None
            oldest = min(s.changed_at for s in self._seen.values())
        return max(0.0, oldest + self.settle - time.monotonic())


#: An mtime before this (1980-01-02) is the mark tools leave on an unfinished file: rsync
#: --partial sets 0 on the part it keeps, robocopy /Z 1980-01-01 on a copy it will resume.
_UNFINISHED_MTIME_NS = 315_619_200 * 10**9


def settled_for(st: os.stat_result) -> float:
    """Seconds by which a file seen for the first time counts as settled already: from its
    mtime to its ctime, 0 when they are one moment or the mtime marks an unfinished file.

    A write sets both to its time, so a file written in place has the two equal and waits the
    whole settle time from when it is seen. `mv` keeps a file's mtime and sets its ctime, so a
    file written elsewhere and moved in shows how long it lay unwritten before it came (any
    other change of its inode, a chmod, chown, link or attribute, sets the ctime too). The
    ctime is the file system's own clock, which nobody sets, so this machine's clock does not
    enter. Once seen, any change restarts the settle time.

    The mtime is the writer's to set (`touch -d`, `cp -p`, `rsync -t`): not caught is a file
    given an old mtime, moved in, and then written on, where the settle time alone caught a
    write resumed within it (`open_for_writing` still sees a writer it may look at); nor, as by
    the settle time alone, a writer that writes without changing the times (O_NOCMTIME)."""
    if st.st_mtime_ns < _UNFINISHED_MTIME_NS:
        return 0.0
    return max(0.0, (st.st_ctime_ns - st.st_mtime_ns) / 1e9)


def open_for_writing(inodes: set[int]) -> set[int]:
    """Which of these inodes some other process holds open for writing.

    Reads /proc/PID/fd and fdinfo; processes we may not inspect are skipped, so this is a
    best-effort guard beside the settle time (a writer under another user and a daemon without
    CAP_SYS_PTRACE is only caught by the settle time).
    """
    busy: set[int] = set()
    me = str(os.getpid())
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit() and p != me]
    except OSError:
        return busy
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if st.st_ino in inodes and _opened_for_write(pid, fd):
                busy.add(st.st_ino)
    return busy


def _opened_for_write(pid: str, fd: str) -> bool:
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("flags:"):
                    return (int(line.split()[1], 8) & os.O_ACCMODE) in _WRITE_MODES
    except (OSError, ValueError):
        return True  # cannot tell: assume a writer, the settle clock will retry
    return True


class _Handler(FileSystemEventHandler):
    def __init__(self, tracker: IntakeTracker) -> None:
        self.tracker = tracker

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.tracker.note(Path(_target(event)))


def _target(event: FileSystemEvent) -> str:
    target = getattr(event, "dest_path", "") or event.src_path
    return os.fsdecode(target) if isinstance(target, bytes) else target


class _Calling(FileSystemEventHandler):
    """Hands the path an event names (where a file was moved to, else the file) to a callable."""

    def __init__(self, seen: Callable[[Path], None]) -> None:
        self.seen = seen

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.seen(Path(_target(event)))
