"""The content check of a spooled file (`policies.content.check_file`), in-process or in a
small pool of worker processes that the daemon keeps (`[gateway] check_processes`).

Why processes: the check is plain Python, and under one interpreter lock it cannot run beside
the bookkeeping of other files (rows, events, fsyncs). `policies` has no side effects, so its
check runs as well in another process, on the other core.

- **Started cheaply and safely:** never `fork` of the threaded daemon. A `forkserver` starts
  once, single-threaded, imports this module (and `policies` with it) and forks each child
  from there. Each child then checks a tiny sample of every flow the daemon serves, so the
  first real file does not pay for the reference tables and patterns built on first use
  (about 20 ms more for the first check). Measured on 2 cores: a new child costs about 40 ms
  of CPU and 60 ms of wall time from the forkserver, its warm-up included. The forkserver's own
  start costs about 0.3 s once. With `spawn` every child, the first and each replacement,
  costs about 280 ms of CPU and 300–400 ms of wall time: an interpreter's start and imports.
- **What crosses:** the spool path (the child opens it itself with `spool.open_regular`:
  O_NOFOLLOW, a regular single-link file), the flow, the day, and the agreement by the SHA-256
  of its pickled terms; the terms themselves only when that child has not been sent them (it
  keeps the newest `KNOWN_TERMS`, and says so when asked by a digest it no longer holds). A
  changed agreement has another digest, so it is always checked by its new terms. Pickling the
  demo's agreement (17 KB) costs about 0.25 ms and loading it as much: once per agreement
  and child, not per file. The verdict comes back.
- **Progress:** the child writes the offset of its file into a shared counter while it reads
  a large file; the daemon's `gateway.progress` record follows that counter as it follows a
  file read in-process, so `status` shows the check under way.
- **A child that dies** (killed, out of memory) ends the check with `CheckProcessLost`: the
  worker's internal-error path retries the transfer after its back-off, and a new child takes
  the dead one's place. A child whose daemon is gone reads the end of its pipe and exits.

`check_processes = 0` (and every command, which has no pool) checks in the calling thread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, ForkServerProcess
from pathlib import Path
from typing import Any, Protocol

from gateway import progress
from gateway.runtime import Runtime
from gateway.state.spool import open_regular
from policies.agreement import Agreement, Flow
from policies.content import check_file
from policies.reasons import Verdict

__all__ = ["CheckPool", "CheckProcessLost", "check"]

log = logging.getLogger(__name__)

#: How often a child writes its offset into the shared counter while it reads a large file.
REPORT_SECONDS = progress.INTERVAL / 2
#: Agreements' terms a child keeps (by digest); the daemon mirrors the same choice per child.
KNOWN_TERMS = 16
#: How long starting a child (and its warm-up) may take before the pool gives up on it.
START_SECONDS = 120.0
#: How long a stopping pool waits for a child to leave before it kills it.
STOP_SECONDS = 10.0


class CheckProcessLost(RuntimeError):
    """The process checking a file ended before it answered (killed, out of memory): the
    transfer is tried again by the workers' internal-error path, in a fresh process."""


def check(rt: Runtime, path: Path, agreement: Agreement, flow: Flow, on: dt.date) -> Verdict:
    """The content verdict on the spool file `path`: in the daemon's pool when it has one,
    else here. Raises as `open_regular` does (StorageError), or CheckProcessLost."""
    pool = rt.checker
    if pool is not None:
        return pool.check(path, agreement, flow, on)
    with open_regular(path) as fh, progress.watched(fh, os.fstat(fh.fileno()).st_size):
        return check_file(fh, agreement, flow, on)


# --- the daemon's side -------------------------------------------------------------------------


class _Counter(Protocol):
    """A shared 64-bit integer (a ctypes value in shared memory)."""

    value: int


@dataclass(eq=False)
class _Child:
    process: ForkServerProcess
    conn: Connection
    counter: _Counter
    known: dict[str, None] = field(default_factory=dict)  # digests of terms it holds, in order

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid


@dataclass(frozen=True)
class _Terms:
    agreement: Agreement  # held, so its id() is not reused while it is cached
    digest: str
    blob: bytes


class CheckPool:
    """`size` child processes that check files; each is lent to one caller at a time."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a check pool has at least one process")
        self.size = size
        self._context: ForkServerContext = multiprocessing.get_context("forkserver")
        self._idle: queue.Queue[_Child] = queue.Queue()
        self._children: set[_Child] = set()
        self._lock = threading.Lock()
        self._terms: dict[int, _Terms] = {}  # id(agreement) → its pickled terms
        self._warm: list[tuple[Agreement, Flow]] = []
        self._on = dt.date.today()  # the day of the warm-up checks
        self._closing = False
        self.replaced = 0  # children started in place of ones that died

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return sorted(c.pid for c in self._children)

    def start(self, warm: Sequence[tuple[Agreement, Flow]] = (), on: dt.date | None = None
              ) -> None:
        """Start the children and warm each up on `warm` (the flows it will check).

        Raises:
            CheckProcessLost: a child did not start.
        """
        # The forkserver imports this module once; every child is forked from it.
        self._context.set_forkserver_preload([__name__])
        self._warm = list(warm)
        self._on = on or self._on
        for _ in range(self.size):
            self._idle.put(self._spawn())

    def check(self, path: Path, agreement: Agreement, flow: Flow, on: dt.date) -> Verdict:
        """Check `path` in a child (waiting for an idle one). Raises what the check raised
        (StorageError from `open_regular`), or CheckProcessLost."""
        terms = self._terms_of(agreement)
        child = self._borrow()
        lost = False
        try:
            child.counter.value = 0
            with progress.followed(lambda: int(child.counter.value), _size(path)):
                reply = self._with_terms(child, "check", terms, flow, on, str(path))
        except CheckProcessLost:
            lost = True
            self._replace(child)
            raise
        finally:
            if not lost:
                self._idle.put(child)  # also after an error of this side's: it is still good
        kind, value = reply
        if kind == "raised":
            raise value
        assert isinstance(value, Verdict)
        return value

    def _borrow(self) -> _Child:
        """An idle child, waiting for one; a new one when every child is gone (one that
        could not be replaced)."""
        while True:
            with self._lock:
                closing, empty = self._closing, not self._children
            if closing:
                raise CheckProcessLost("the check pool is stopping; the transfer is checked at "
                                       "the next start")
            if empty:
                return self._spawn()
            try:
                return self._idle.get(timeout=1.0)
            except queue.Empty:
                pass

    def close(self, wait_seconds: float = STOP_SECONDS) -> None:
        """Stop every child: ask, wait up to `wait_seconds`, then kill what is left."""
        with self._lock:
            self._closing = True
            children = list(self._children)
            self._children.clear()
        with contextlib.suppress(queue.Empty):
            while True:
                self._idle.get_nowait()
        for child in children:
            with contextlib.suppress(OSError):
                child.conn.send(("stop",))
        for child in children:
            child.process.join(wait_seconds)
            if child.process.is_alive():
                log.warning("the check process %d did not stop; killing it", child.pid)
                child.process.kill()
                child.process.join(wait_seconds)
            child.conn.close()

    def _spawn(self) -> _Child:
        parent_end, child_end = self._context.Pipe()
        counter: _Counter = self._context.Value("q", 0, lock=False)
        process = self._context.Process(target=_serve, args=(child_end, counter,
                                                             REPORT_SECONDS),
                                        name="tachiai-check", daemon=True)
        try:
            process.start()
        except (OSError, EOFError) as exc:  # the forkserver could not be reached or started
            raise CheckProcessLost(f"cannot start a check process: {exc}") from exc
        finally:
            child_end.close()
        child = _Child(process, parent_end, counter)
        with self._lock:
            if self._closing:
                process.kill()
                raise CheckProcessLost("the check pool is stopping")
            self._children.add(child)
        try:
            if not parent_end.poll(START_SECONDS):
                raise CheckProcessLost(f"the check process {child.pid} did not start")
            self._ask(child, None)  # its "ready"
            for agreement, flow in self._warm:
                self._with_terms(child, "warm", self._terms_of(agreement), flow, self._on, "")
        except CheckProcessLost:
            self._forget(child)
            raise
        return child

    def _with_terms(self, child: _Child, kind: str, terms: _Terms, flow: Flow, on: dt.date,
                    path: str) -> tuple[str, Any]:
        """Ask `child` to `kind` ("check" or "warm") under `terms`: by their digest alone when
        it holds them, else (or when it says it does not) with the terms themselves."""
        known = terms.digest in child.known
        reply = self._ask(child, (kind, terms.digest, None if known else terms.blob, flow, on,
                                  path))
        if reply[0] == "unknown":
            reply = self._ask(child, (kind, terms.digest, terms.blob, flow, on, path))
        if reply[0] != "unknown":
            _remember(child.known, terms.digest, None)
        return reply

    def _ask(self, child: _Child, message: tuple[Any, ...] | None) -> tuple[str, Any]:
        """Send `message` (None: nothing) and read the child's answer."""
        try:
            if message is not None:
                child.conn.send(message)
            reply: tuple[str, Any] = child.conn.recv()
        except (EOFError, OSError) as exc:
            child.process.join(STOP_SECONDS)
            raise CheckProcessLost(
                f"the check process {child.pid} ended before it answered (exit "
                f"{child.process.exitcode}); the transfer is checked again") from exc
        return reply

    def _replace(self, child: _Child) -> None:
        self._forget(child)
        with self._lock:
            if self._closing:
                return
        try:
            fresh = self._spawn()
        except CheckProcessLost as exc:
            log.error("cannot start a check process (%s); the pool has one fewer", exc)
            return
        self.replaced += 1
        log.warning("a check process ended (pid %d, exit %s); pid %d took its place",
                    child.pid, child.process.exitcode, fresh.pid)
        self._idle.put(fresh)

    def _forget(self, child: _Child) -> None:
        with self._lock:
            self._children.discard(child)
        if child.process.is_alive():
            child.process.kill()
        child.process.join(STOP_SECONDS)
        child.conn.close()

    def _terms_of(self, agreement: Agreement) -> _Terms:
        with self._lock:
            found = self._terms.get(id(agreement))
        if found is not None and found.agreement is agreement:
            return found
        blob = pickle.dumps(agreement, protocol=pickle.HIGHEST_PROTOCOL)
        terms = _Terms(agreement, hashlib.sha256(blob).hexdigest(), blob)
        with self._lock:
            if len(self._terms) >= KNOWN_TERMS:
                self._terms.pop(next(iter(self._terms)))
            self._terms[id(agreement)] = terms
        return terms


def _remember(cache: dict[str, Any], key: str, value: Any) -> None:
    if key not in cache and len(cache) >= KNOWN_TERMS:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _size(path: Path) -> int:
    """The file's size for the progress record only (the child opens it with care)."""
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


# --- the child's side ----------------------------------------------------------------------------


def _serve(conn: Connection, counter: _Counter, report_seconds: float) -> None:
    """A child's loop: answer each request until told to stop or the daemon is gone."""
    # Ctrl-C at a terminal, or a SIGTERM to the whole group, reaches every process: the
    # daemon lets running checks finish, then stops its children itself (a child whose daemon
    # is gone ends at the end of its pipe).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    terms: dict[str, Agreement] = {}
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the daemon is gone
        kind = message[0]
        if kind == "stop":
            return
        _kind, digest, blob, flow, on, path = message
        if blob is not None:
            # The daemon's own pickle over this child's private pipe (which unpickles every
            # message anyway): nothing from outside the gateway is ever unpickled.
            _remember(terms, digest, pickle.loads(blob))  # noqa: S301
        agreement = terms.get(digest)
        if agreement is None:  # pushed out of this child's cache: the daemon sends them again
            conn.send(("unknown", digest))
            continue
        reply: tuple[str, Any]
        try:
            if kind == "check":
                reply = ("verdict", _check(Path(path), agreement, flow, on, counter,
                                           report_seconds))
            else:  # "warm"
                _warm_up(agreement, flow, on)
                reply = ("warm", None)
        except Exception as exc:  # handed back to the daemon, which raises it in the worker
            reply = ("raised", exc)
        try:
            conn.send(reply)
        except (pickle.PicklingError, TypeError, AttributeError):
            conn.send(("raised", RuntimeError(f"the check raised {type(reply[1]).__name__}")))
        except OSError:
            return


def _check(path: Path, agreement: Agreement, flow: Flow, on: dt.date, counter: _Counter,
           report_seconds: float) -> Verdict:
    with open_regular(path) as fh, _reporting(fh.fileno(), counter, report_seconds):
        return check_file(fh, agreement, flow, on)


@contextlib.contextmanager
def _reporting(fd: int, counter: _Counter, seconds: float) -> Iterator[None]:
    """Write the offset of `fd` into `counter` every `seconds` while a large file is read
    (nothing for a small one: it is done before anyone could look)."""
    if os.fstat(fd).st_size < progress.LARGE:
        yield
        return
    stopped = threading.Event()

    def report() -> None:
        while not stopped.wait(seconds):
            try:
                counter.value = os.lseek(fd, 0, os.SEEK_CUR)
            except OSError:
                return

    thread = threading.Thread(target=report, name="tachiai-check-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        thread.join()


def _warm_up(agreement: Agreement, flow: Flow, on: dt.date) -> None:
    """Check a tiny sample of the flow's dataset: what the check builds on first use (the
    reference tables, the patterns) is then ready for the first real file."""
    dataset = agreement.dataset_of(flow)
    if dataset.format != "csv" or not dataset.encodings:
        return
    header = ",".join(dataset.header)
    sample = f"{header}\r\n{','.join('1' for _ in dataset.header)}\r\n"
    try:
        check_file(io.BytesIO(sample.encode(dataset.encodings[0])), agreement, flow, on)
    except (UnicodeError, LookupError):
        return
