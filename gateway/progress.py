"""What the daemon is working on now: one small record per transfer whose step reads a large
file (check, seal, deliver), for `tachiai status`.

A step runs inside `step(...)`; the code that opens the large file wraps it in `watched(fh,
total)`. For a file of at least `LARGE` bytes a sampler thread then reads the file's offset
(`lseek(fd, 0, SEEK_CUR)`, which moves nothing) every `INTERVAL` seconds and writes
`<state_dir>/progress/<hash of the transfer>.json` when it changed (and every `KEEPALIVE`
seconds when it did not), and removes the record when the step ends. The worker's loop pays
nothing per chunk. A check in one of the daemon's check processes is followed through the
offset that process writes into shared memory (`followed`). The receiving side's SFTP pickup
reports a large download the same way (step "download", its source and remote name in place of
a transfer id).

Why files and not a row of the state database: an update is a rename of a few hundred bytes in
the state directory, which on PostgreSQL the nodes share already (the spool is in it), so any
node's `status` sees every node's work; a row would cost a commit each time (a durable one on
SQLite, where the writer lock is also the workers'). The record is advisory: it is written
without fsync, and losing it in a crash loses nothing (the step itself is the truth).

A record is live while its writer is: `live` ignores one written by a process of this host that
no longer exists, and any not rewritten for `STALE_SECONDS` (a dead node's).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from gateway import processes

log = logging.getLogger(__name__)

#: Files smaller than this are done before anyone could look: no record at all.
LARGE = 4 << 20
#: How often a record is brought up to date while its step runs.
INTERVAL = 0.5
#: A record is rewritten at least this often while its step runs, even with nothing new.
KEEPALIVE = 5.0
#: A record not rewritten for this long belongs to a worker that is gone.
STALE_SECONDS = 30.0
#: The folder of the records, under the state directory.
FOLDER = "progress"


@dataclass(frozen=True)
class Record:
    """A transfer's step in progress: bytes `done` of `total`, who works on it, since when."""

    transfer: str
    step: str
    done: int
    total: int
    started_ns: int
    updated_ns: int
    owner: str  # node:pid:worker, as the claim names it
    host: str
    pid: int

    @property
    def percent(self) -> int:
        return min(100, self.done * 100 // max(self.total, 1))

    @property
    def elapsed(self) -> float:
        return max(0.0, (self.updated_ns - self.started_ns) / 1e9)

    @property
    def rate(self) -> float:
        """Bytes a second so far (0 before any time has passed)."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        node, _, rest = self.owner.partition(":")
        return {"transfer": self.transfer, "step": self.step, "done": self.done,
                "total": self.total, "percent": self.percent,
                "rate": round(self.rate), "elapsed": round(self.elapsed, 1),
                "node": node, "worker": rest.partition(":")[2], "pid": self.pid,
                "started_ns": self.started_ns, "updated_ns": self.updated_ns}


@dataclass
class _Step:
    folder: Path
    transfer: str
    step: str
    owner: str


_current: ContextVar[_Step | None] = ContextVar("tachiai_progress_step", default=None)


@contextlib.contextmanager
def step(state_dir: Path, transfer: str, name: str, owner: str | None) -> Iterator[None]:
    """The step `name` of `transfer` runs in this block (on this thread): a file it watches
    is reported as this step's."""
    token = _current.set(_Step(state_dir / FOLDER, transfer, name, owner or ""))
    try:
        yield
    finally:
        _current.reset(token)


@contextlib.contextmanager
def watched(fh: IO[bytes], total: int) -> Iterator[None]:
    """Report the reading of `fh` (an OS file of `total` bytes) while this block runs, when
    it is large and a step is running; nothing otherwise."""
    fd = fh.fileno()
    with followed(lambda: os.lseek(fd, 0, os.SEEK_CUR), total):
        yield


@contextlib.contextmanager
def followed(position: Callable[[], int], total: int) -> Iterator[None]:
    """Report a reading of `total` bytes whose offset `position()` tells (a file read here, or
    a counter that the process reading it writes: gateway.outbound.check_pool), when it is
    large and a step is running; nothing otherwise. `position` may raise OSError once the
    reading is over."""
    current = _current.get()
    if current is None or total < LARGE:
        yield
        return
    sampler = _Sampler(current, position, total)
    sampler.start()
    try:
        yield
    finally:
        sampler.finish()


class _Sampler(threading.Thread):
    def __init__(self, current: _Step, position: Callable[[], int], total: int) -> None:
        super().__init__(name=f"progress-{current.transfer}", daemon=True)
        self.current = current
        self.position = position
        self.total = total
        # Named by a hash: a download's "transfer" is its source and remote name, which are
        # not safe as a file name.
        digest = hashlib.sha256(current.transfer.encode("utf-8")).hexdigest()[:32]
        self.path = current.folder / f"{digest}.json"
        self.started_ns = time.time_ns()
        self.stopped = threading.Event()
        self.written = False

    def run(self) -> None:
        last: int | None = None
        last_write = float("-inf")
        while True:
            try:
                done = min(self.position(), self.total)
            except OSError:
                return  # the file was closed under us: the step is ending
            now = time.monotonic()
            if done != last or now - last_write >= KEEPALIVE:
                self._write(done)
                last, last_write = done, now
            if self.stopped.wait(INTERVAL):
                return

    def _write(self, done: int) -> None:
        c = self.current
        record = Record(c.transfer, c.step, done, self.total, self.started_ns, time.time_ns(),
                        c.owner, socket.gethostname(), os.getpid())
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(mode=0o700, exist_ok=True)
            # No fsync: progress is advisory, and a crash that loses it loses nothing.
            tmp.write_text(json.dumps(asdict(record)), encoding="utf-8")
            os.replace(tmp, self.path)
            self.written = True
        except OSError as exc:
            log.debug("cannot write the progress of %s: %s", c.transfer, exc.strerror)

    def finish(self) -> None:
        self.stopped.set()
        self.join()
        if self.written:
            with contextlib.suppress(OSError):
                self.path.unlink()


def live(state_dir: Path) -> list[Record]:
    """The records of steps running now, oldest first; stale ones (their writer is gone) are
    left out, unreadable ones too (one being replaced)."""
    found = [r for _path, r in _records(state_dir) if r is not None and not _stale(r)]
    return sorted(found, key=lambda r: r.started_ns)


def remove_stale(state_dir: Path) -> int:
    """Remove the records whose writer is gone (a daemon's start, after a crash); return how
    many. A record being written by a live worker, of any node, is left alone."""
    removed = 0
    for path, record in _records(state_dir):
        if record is not None and _stale(record):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


def _records(state_dir: Path) -> list[tuple[Path, Record | None]]:
    try:
        paths = sorted(p for p in (state_dir / FOLDER).iterdir() if p.suffix == ".json")
    except OSError:
        return []
    out: list[tuple[Path, Record | None]] = []
    for path in paths:
        try:
            out.append((path, Record(**json.loads(path.read_text(encoding="utf-8")))))
        except (OSError, ValueError, TypeError):
            out.append((path, None))  # being replaced, or not ours: never removed
    return out


def _stale(record: Record) -> bool:
    if time.time_ns() - record.updated_ns > STALE_SECONDS * 1e9:
        return True
    return record.host == socket.gethostname() and not processes.alive(record.pid)
