"""The daemon's workers: lanes of threads that take the outbound steps, each step claimed first.

Threads, not processes: the heavy steps (SHA-256, AES, zlib, SFTP I/O, fsync) run in C code
that releases the GIL, so threads overlap them much as processes would, while sharing one
Runtime, whose engine pool gives each thread its own SQLite connection. Lanes: intake (take in,
check) and sealing each have `[gateway] workers` threads (intake one more than the check
processes, if that is more: `intake_threads`), so sealing an approved file never waits behind
the intake of others; each recipient's deliveries have one thread of their own, so
a silent partner holds only its lane and the order per partner is kept. The one step that is
plain Python over a whole file, the content check, runs in `[gateway] check_processes`
processes that the workers start and stop (gateway.outbound.check_pool). It never decides what
a step does (gateway.outbound.pipeline does) and never lets one file's error stop the daemon.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from gateway import faults, processes
from gateway.errors import TachiaiError
from gateway.outbound import check_pool, internal_errors, pipeline
from gateway.outbound.intake import IntakeTracker, Outbox
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime
from gateway.state import claims, clock
from gateway.state.store import Transfer

log = logging.getLogger(__name__)

INTAKE_STATES = (State.DROPPED, State.QUARANTINED)
SEAL_STATES = (State.APPROVED,)
DELIVER_STATES = (State.SEALED,)
_RETRY_AFTER_ERROR_SECONDS = 30.0  # after a known error (a TachiaiError), as the loop did
_ERROR_BACKOFF_SECONDS = 1.0  # after an internal error: doubles with each try …
_ERROR_BACKOFF_MAX_SECONDS = 60.0  # … up to this
#: How long a stopping daemon waits for running steps before it gives their claims back.
STOP_WAIT_SECONDS = 20.0
_GET_TIMEOUT = 0.2  # how often an idle worker looks whether the daemon is stopping
_FLUSH_GAP_SECONDS = 0.25  # at most four flush rounds a second
_RETRY_FLUSH_SECONDS = 1.0  # after a flush that failed (the events stay pending meanwhile)


@dataclass(frozen=True)
class Job:
    """One piece of work for a lane: `key` (a transfer id or an outbox path) is what the
    dispatcher de-duplicates on; `run` takes the worker's owner id."""

    key: str
    run: Callable[[str], None]


class Lane:
    """A queue and the threads that work it, in order."""

    def __init__(self, name: str, threads: int, node: str, stopping: threading.Event) -> None:
        self.name = name
        self.jobs: queue.Queue[Job] = queue.Queue()
        self._stopping = stopping
        self.owners = [claims.owner_id(node, f"{name}-{i}") for i in range(threads)]
        self._threads = [
            threading.Thread(target=self._work, args=(owner,), name=f"tachiai-{name}-{i}",
                             daemon=True)
            for i, owner in enumerate(self.owners)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, deadline: float) -> bool:
        """Wait until `deadline` (monotonic) for the threads; True when all ended."""
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _work(self, owner: str) -> None:
        while not self._stopping.is_set():
            try:
                job = self.jobs.get(timeout=_GET_TIMEOUT)
            except queue.Empty:
                continue
            if self._stopping.is_set():
                return  # not started: the transfer stays in its recorded state, unclaimed
            job.run(owner)


class Flusher:
    """A thread that moves the workers' events into the ledger, so no worker waits for it.

    A worker's step commits its events with its state change (the outbox in the state
    database), then asks for a flush and goes on. Asks made while a flush runs are answered by
    the next one, which moves every event pending by then: under load one flush (a ledger
    commit and a commit of its record) serves the steps of several files. Nothing is lost when
    the process dies first: the events are pending, and the next flush (at the latest the
    next start's) moves them, idempotently by key.
    """

    def __init__(self, rt: Runtime, stopping: threading.Event,
                 flushed: threading.Event) -> None:
        self.rt = rt
        self._stopping = stopping
        self._flushed = flushed  # set after a flush that moved events (the loop's wake)
        self._wanted = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tachiai-flush", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self) -> None:
        """Flush soon (cheap: sets an event)."""
        self._wanted.set()

    def join(self, deadline: float) -> None:
        self._wanted.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self._wanted.wait(_GET_TIMEOUT):
                continue
            self._wanted.clear()
            try:
                # One round (a read of what is pending, one append, one record), then a gap in
                # which the events of more steps gather: each round is two durable commits, one
                # under the state database's write lock, which the workers' steps wait for.
                if self.rt.flush(rounds=1):
                    self._wanted.set()  # more may have come meanwhile: look again after the gap
                    self._flushed.set()  # the loop then tells the checkpoint service
                self._stopping.wait(_FLUSH_GAP_SECONDS)
            except TachiaiError as exc:
                log.error("cannot move events into the ledger (tried again): %s",
                          exc.diagnostics())
                self._wanted.set()
                self._stopping.wait(_RETRY_FLUSH_SECONDS)
            except Exception as exc:  # a bug must not stop the workers' flushes for good
                log.exception("cannot move events into the ledger: internal error (%s)",
                              type(exc).__name__)
                self._wanted.set()
                self._stopping.wait(_RETRY_FLUSH_SECONDS)


def intake_threads(workers: int, check_processes: int) -> int:
    """The intake lane's threads: `workers`, and with check processes at least one more than
    there are processes. An intake thread waits for its file's check most of the time; the one
    more takes in the next file (a copy, a hash, fsyncs: I/O) meanwhile, so no process waits
    for a thread's I/O. On 2 cores the whole-path benchmark's batched approvals measured about
    a tenth faster with 3 intake threads than with 2, and slower again with 4."""
    return max(workers, check_processes + 1) if check_processes else workers


class Workers:
    """The lanes of one daemon, the dispatcher that feeds them, the ledger flusher and the
    heartbeat."""

    def __init__(self, rt: Runtime, stopping: threading.Event, wake: threading.Event) -> None:
        self.rt = rt
        self.stopping = stopping
        self.wake = wake
        # Transfers a step left awaiting witnesses (`wake` is set with each): the daemon's loop
        # takes them at its next turn (`newly_awaiting`) and publishes their statements.
        self._awaiting: list[str] = []
        self.node = rt.settings.node_name or socket.gethostname()
        self.owner = claims.owner_id(self.node, "dispatch")
        self._lock = threading.Lock()
        self._queued: set[str] = set()  # transfer ids and outbox paths queued or running
        self._running: dict[str, str] = {}  # transfer id → owner while a step runs (renewed)
        self._errors: dict[str, int] = {}  # transfer id → internal errors so far
        self._not_before: dict[str, float] = {}  # transfer id → monotonic time of next try
        n = rt.settings.workers
        size = rt.settings.check_processes
        self.intake = Lane("intake", intake_threads(n, size), self.node, stopping)
        self.sealing = Lane("seal", n, self.node, stopping)
        self.delivery: dict[str, Lane] = {}
        self.flusher = Flusher(rt, stopping, wake)
        self._heartbeat = threading.Thread(target=self._beat, name="tachiai-heartbeat",
                                           daemon=True)
        # The content check runs in these processes, beside the lanes' bookkeeping.
        self.checks = check_pool.CheckPool(size) if size else None

    def start(self) -> None:
        """Start the check processes (warmed up on this gateway's flows), then the threads.

        Raises:
            check_pool.CheckProcessLost: a check process did not start.
        """
        if self.checks is not None:
            self.checks.start(self.rt.our_flows(), clock.today())
            self.rt.checker = self.checks
            log.info("content checks run in %d process(es): %s", self.checks.size,
                     ", ".join(str(pid) for pid in self.checks.pids))
        self.flusher.start()
        self.intake.start()
        self.sealing.start()
        self._heartbeat.start()

    def release_dead(self) -> int:
        """Give back the claims of this node's workers that died (kill -9, power loss), so
        their work resumes now rather than when the lease runs out; how many.

        Raises:
            StorageError: the state database cannot be written.
        """
        dead = [h.owner for h in self.rt.store.holders() if self._dead_here(h.owner)]
        released = self.rt.store.release_owners(dead)
        if released:
            log.info("took back %d claim(s) of stopped workers", released)
        return released

    def take_in(self, tracker: IntakeTracker) -> None:
        """Hand every settled outbox entry to the intake lane, once."""
        ready = tracker.ready()
        if not ready:
            return
        # An entry with an intake intent recorded is its worker's to move (or a failed one's
        # to retry): taken in again, it would become a second transfer, then "vanished".
        intents = {t.source_path for t in self.rt.store.in_states([State.DROPPED])}
        for box, path in ready:
            tracker.forget(path)
            if str(path) not in intents:
                self.submit(box, path)

    def submit(self, box: Outbox, path: Path) -> bool:
        """Queue one settled outbox entry for intake; False when it is already queued."""
        key = str(path)
        with self._lock:
            if key in self._queued:
                return False
            self._queued.add(key)
        self.intake.jobs.put(Job(key, partial(self._intake, box, path)))
        return True

    def dispatch(self) -> None:
        """Queue every claimable transfer that is due on the lane of its next step, unless it
        is queued or running here already (the worker reads its whole row when it runs)."""
        now, now_ns = time.monotonic(), clock.now_ns()
        for c in self.rt.store.claimable(pipeline.WORK_STATES, self.owner, limit=1000):
            if self.stopping.is_set():
                return
            with self._lock:
                if c.id in self._queued or self._not_before.get(c.id, 0.0) > now:
                    continue
            if not pipeline.due(c, now_ns):
                continue
            lane, states = self._lane_for(c.status, c.recipient)
            with self._lock:
                self._queued.add(c.id)
            lane.jobs.put(Job(c.id, partial(self._advance, c.id, states)))

    def newly_awaiting(self) -> list[str]:
        """The transfers the workers left awaiting witnesses since the last call."""
        with self._lock:
            found, self._awaiting = self._awaiting, []
        return found

    def stop(self, wait_seconds: float = STOP_WAIT_SECONDS) -> None:
        """Let running steps finish (up to `wait_seconds`), then give back every claim still
        held; queued work stays in its recorded state."""
        self.stopping.set()
        deadline = time.monotonic() + wait_seconds
        lanes = [self.intake, self.sealing, *self.delivery.values()]
        finished = all([lane.join(deadline) for lane in lanes])
        if self.checks is not None:
            self.rt.checker = None
            self.checks.close()
        self.flusher.join(deadline)  # what is left pending, the daemon's last flush moves
        with self._lock:
            left = dict(self._running)
        for transfer_id, owner in left.items():
            try:
                self.rt.store.release(pipeline.KIND, transfer_id, owner)
            except TachiaiError as exc:
                log.error("cannot give back the claim on %s: %s", transfer_id, exc.diagnostics())
        if not finished:
            log.warning("stopped with %d step(s) still running; their claims were given back",
                        len(left))

    # -- the jobs ---------------------------------------------------------------------------

    def _lane_for(self, state: State, recipient: str) -> tuple[Lane, Sequence[State]]:
        if state in INTAKE_STATES:
            return self.intake, INTAKE_STATES
        if state in SEAL_STATES:
            return self.sealing, SEAL_STATES
        lane = self.delivery.get(recipient)
        if lane is None:  # one thread per partner, made when it first has work
            lane = self.delivery[recipient] = Lane(f"deliver-{recipient}", 1, self.node,
                                                   self.stopping)
            lane.start()
        return lane, DELIVER_STATES

    def _intake(self, box: Outbox, path: Path, owner: str) -> None:
        try:
            # Created already claimed by this worker; its steps follow in `_advance`.
            transfer = pipeline.take_in(self.rt, box, path, owner=owner, states=())
        except TachiaiError as exc:
            log.error("cannot take in a file from %s: %s", box.path, exc.diagnostics())
            transfer = None
        except Exception as exc:
            # A bug must not stop the daemon for every other file (nor at every start while
            # the file waits). Only the class is logged: an unchecked name may be in the
            # message, and a name is written nowhere before it is checked.
            log.error("cannot take in a file from %s: internal error (%s); it is tried again "
                      "at the next scan", box.path, type(exc).__name__)
            transfer = None
        if transfer is None:
            self._done(str(path))
            return
        with self._lock:
            self._queued.add(transfer.id)
        self._done(str(path))
        self._advance(transfer, INTAKE_STATES, owner)

    def _advance(self, transfer: Transfer | str, states: Sequence[State], owner: str) -> None:
        """Take the transfer's steps in `states` (a dispatched id is read here, in the worker);
        then hand it straight to the lane of its next step, if that step is due."""
        transfer_id = transfer if isinstance(transfer, str) else transfer.id
        with self._lock:
            self._running[transfer_id] = owner
        handed_on = False
        t = transfer if isinstance(transfer, Transfer) else None
        try:
            t = self.rt.store.get(transfer_id) if t is None else t
            after = pipeline.advance(self.rt, t, owner=owner, states=states,
                                     flush=self.flusher.request,
                                     hand_claims=self._next_owners(t, states))
        except TachiaiError as exc:
            log.error("transfer %s: %s", transfer_id, exc.diagnostics())
            self._hold(transfer_id, _RETRY_AFTER_ERROR_SECONDS)
        except Exception as exc:  # a bug must not stop the other transfers, nor the daemon
            log.exception("transfer %s: internal error in step %s", transfer_id,
                          t.state if t is not None else "reading it")
            self._internal_error(transfer_id, owner, exc)
        else:
            with self._lock:
                self._errors.pop(transfer_id, None)
                self._not_before.pop(transfer_id, None)
            if after.state != t.state:
                log.info("transfer %s (%s) is %s", after.id, after.file_name, after.state)
                if after.status is State.AWAITING_APPROVAL:
                    with self._lock:
                        self._awaiting.append(after.id)
                    self.wake.set()
            handed_on = self._hand_on(after, states)
        finally:
            with self._lock:
                self._running.pop(transfer_id, None)
            if not handed_on:
                self._done(transfer_id)

    def _next_owners(self, t: Transfer, states: Sequence[State]) -> dict[State, str]:
        """Who takes the step after a seal: the one worker of the partner's delivery lane,
        to whom the sealed move hands its claim (`pipeline.advance`'s `hand_claims`)."""
        if tuple(states) != SEAL_STATES:
            return {}
        lane, _states = self._lane_for(State.SEALED, t.recipient)
        return {State.SEALED: lane.owners[0]}

    def _hand_on(self, t: Transfer, states: Sequence[State]) -> bool:
        """Queue the transfer's next step on its lane now (sealed → the partner's delivery),
        rather than after the dispatcher's next read; True when queued. The transfer stays in
        `_queued` throughout, so the dispatcher never queues it twice; a claim the move handed
        to the next worker is renewed by the heartbeat and given back at a stop, as a running
        step's. Only a shortcut: its state (and the handed claim) is committed, so if this
        process dies before the next lane takes it, the next start releases the dead worker's
        claim (another node: when its lease ends) and finds it as any other claimable transfer.
        """
        if t.status not in pipeline.WORK_STATES or t.status in states:
            return False  # no next step on another lane (a delivered transfer's is released)
        if self.stopping.is_set() or not pipeline.due(t, clock.now_ns()):
            if t.claimed_by is not None:  # handed to a step that is not taken now
                self.rt.store.release(pipeline.KIND, t.id, t.claimed_by)
            return False
        lane, next_states = self._lane_for(t.status, t.recipient)
        if t.claimed_by is not None:
            with self._lock:
                self._running[t.id] = t.claimed_by
        faults.crash_point("hand-on")
        lane.jobs.put(Job(t.id, partial(self._advance, t, next_states)))
        return True

    def _internal_error(self, transfer_id: str, owner: str, exc: Exception) -> None:
        with self._lock:
            tries = self._errors[transfer_id] = self._errors.get(transfer_id, 0) + 1
        if tries < self.rt.settings.error_attempts:
            wait = min(_ERROR_BACKOFF_SECONDS * 2 ** (tries - 1), _ERROR_BACKOFF_MAX_SECONDS)
            log.warning("transfer %s will be tried again in %.0f s (internal error %d of %d)",
                        transfer_id, wait, tries, self.rt.settings.error_attempts)
            self._hold(transfer_id, wait)
            return
        try:
            internal_errors.give_up(self.rt, self.rt.store.get(transfer_id), owner,
                                    self.rt.settings.lease_seconds, tries, exc)
            self.rt.flush()
        except TachiaiError as error:
            log.error("transfer %s: cannot record its failure: %s", transfer_id,
                      error.diagnostics())
            self._hold(transfer_id, _RETRY_AFTER_ERROR_SECONDS)
            return
        with self._lock:
            self._errors.pop(transfer_id, None)

    def _hold(self, transfer_id: str, seconds: float) -> None:
        with self._lock:
            self._not_before[transfer_id] = time.monotonic() + seconds

    def _done(self, key: str) -> None:
        # No wake for the dispatcher: a next step on another lane was handed on already, and
        # what is left (a retry after a back-off, a claim another worker held) waits for
        # the dispatcher's poll.
        with self._lock:
            self._queued.discard(key)

    def _beat(self) -> None:
        """Renew the lease of every running step (a long upload keeps its claim)."""
        while not self.stopping.wait(self.rt.settings.lease_seconds / 4):
            with self._lock:
                running = dict(self._running)
            for transfer_id, owner in running.items():
                try:
                    if not self.rt.store.renew(pipeline.KIND, transfer_id, owner,
                                               self.rt.settings.lease_seconds):
                        log.debug("transfer %s: no claim to renew (between steps)", transfer_id)
                except TachiaiError as exc:
                    log.warning("cannot renew the claim on %s: %s", transfer_id,
                                exc.diagnostics())

    def _dead_here(self, owner: str) -> bool:
        node, pid, _worker = claims.split_owner(owner)
        return (node == self.node and pid is not None and pid != os.getpid()
                and not processes.alive(pid))
