"""The daemon (`tachiai run`): watches the outboxes and moves transfers through the pipeline.

This loop watches and dispatches; the steps run in lanes of worker threads (gateway.workers),
each claimed first. It takes back the claims of workers a crash killed before it looks for new
files, keeps running when one file or one step fails (retried with back-off, then `failed`),
and stops cleanly on SIGTERM or SIGINT, leaving every transfer in a recorded state. It refuses
to start while another daemon holds the same state directory (gateway.state.daemon_lock).
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from gateway import progress
from gateway.config import deliverability
from gateway.config.settings import Settings
from gateway.errors import ConfigError, TachiaiError
from gateway.evidence.checkpointing import CheckpointService, CheckpointSettings
from gateway.evidence.ledger_guard import LedgerGuard
from gateway.i18n import N_
from gateway.inbound import arrivals
from gateway.inbound.pickup import InboundPickup
from gateway.outbound import approval_folder, notices, pipeline, receipts, schedule_sweep
from gateway.outbound.intake import IntakeTracker, Outbox
from gateway.outbound.pickup import Pickup
from gateway.runtime import Runtime
from gateway.state import clock, daemon_lock, wakeups
from gateway.workers import Workers

log = logging.getLogger(__name__)

#: Outbox folders the daemon makes: rwx for the daemon and the senders' group, setgid so what
#: is made inside keeps the group. Set by chmod, because the unit's UMask=0077 would leave
#: drwx--S--- and no sender could drop a file.
OUTBOX_MODE = 0o2770
_SWEEP_SECONDS = 60.0  # late provisions (遅延) are decided by the day: a minute is plenty


class Daemon:
    """One running gateway process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rt = Runtime.open(settings)
        # Refuse to start with a flow that cannot be delivered (no password route, no age key,
        # an unusable key file), rather than find out after a witness approved a file.
        routes = deliverability.check(settings, self.rt.agreements, self.rt.registry,
                                      clock.today())
        routes.raise_if_any(settings.config_path)
        for warning in routes.warnings:
            log.warning("UNSAFE: %s", warning)
        self.stopping = threading.Event()
        self.recover: Callable[[Runtime], object] | None = None  # set by run()
        self.pickup = Pickup(self.rt)
        self.inbound_pickup = InboundPickup(self.rt)  # [inbound.pickup.NAME]: SFTP into the inbox
        # Signed checkpoints (issue 4), kept outside the database: at least every second.
        self.checkpoints = CheckpointService(
            self.rt.ledger, CheckpointSettings.from_settings(settings),
            guard=LedgerGuard(self.rt.store, self.rt.ledger),
        )
        self.outboxes = self._prepare_outboxes()
        # Witnesses approve by signing the statements published here with ssh-keygen.
        self.approvals = approval_folder.ApprovalFolder(self.rt, settings.approvals_folder)
        self.approvals.prepare()
        self.tracker = IntakeTracker(self.outboxes, settings.settle_seconds)
        self.workers = Workers(self.rt, self.stopping, self.tracker.wake)
        # PostgreSQL: another node's state change wakes this loop at once (polling stays the
        # truth; a lost notification costs one poll interval).
        self.changed = threading.Event()  # set with the wake: dispatch now, not at the poll
        # A signature handed over in the approvals folder: taken now, not at the next poll.
        self.signed = threading.Event()
        self.listener = wakeups.Listener(self.rt.store, self.tracker.wake, self.changed)

    def _prepare_outboxes(self) -> list[Outbox]:
        boxes = []
        for agreement, flow in self.rt.our_flows():
            path = self.settings.outbox(agreement.id, flow.id)
            make_outbox(path, self.settings.outbox_dir)
            boxes.append(Outbox(agreement.id, flow.id, path))
            if flow.recipient not in agreement.groups:  # a group's members: each at delivery
                self.settings.recipient(flow.recipient)  # refuse to start without a route
        boxes.extend(self.pickup.outboxes())  # SFTP pickups land here, then intake as usual
        spool_dev = os.stat(self.rt.spool.root).st_dev
        for box in boxes:
            if os.stat(box.path).st_dev != spool_dev:
                raise ConfigError(
                    N_("outbox {path} is on another file system than the spool").format(
                        path=box.path),
                    hint=N_("put gateway.state_dir and gateway.outbox_dir on one file system, so "
                            "files are moved in by an atomic rename"),
                )
        return boxes

    def stop(self, signum: int | None = None) -> None:
        """Stop after the current step (from any thread but the main one while it runs the
        loop: SIGTERM and SIGINT come through `SignalRelay`)."""
        if signum is not None:
            log.info("received %s; stopping after the current step", signal.Signals(signum).name)
        self.stopping.set()
        self.tracker.wake.set()

    def run(self, recover: Callable[[Runtime], object] | None = None) -> None:
        """Run until stopped; `recover` runs before any work and then with each sweep: the
        recovery of commands that run beside the daemon (an interrupted `holdings forward`).
        Raises only for errors that make running impossible."""
        offset = clock.enable_test_offset()
        if offset:
            log.warning(
                "the clock is shifted by %d s (%s): for tests only", offset, clock.OFFSET_ENV
            )
        # Before any work: an event in the ledger that the gateway did not write stops the
        # start (LedgerIntegrityError) instead of being signed into the next checkpoint.
        self.checkpoints.check_start()
        # Claims of this node's workers that died are taken back now; the workers then resume
        # every unfinished step (a lease held elsewhere is taken over once it expires).
        self.workers.release_dead()
        progress.remove_stale(self.settings.state_dir)  # what a dead worker was doing
        self.recover = recover
        if recover is not None:
            recover(self.rt)
        recovered = pipeline.recover(self.rt, owner=self.workers.owner, states=())
        if recovered:
            log.info("resuming %d unfinished transfer(s)", recovered)
        # Refuses to start (LedgerIntegrityError) if the ledger contradicts our last checkpoint.
        self.checkpoints.start()
        self.tracker.start_watching({self.settings.approvals_folder: self._signed})
        for box in self.outboxes:
            log.info("watching outbox of %s/%s: %s", box.agreement, box.flow, box.path)
        log.info("tachiai is running (party %s; %d intake and %d sealing thread(s)); stop with "
                 "Ctrl-C or SIGTERM", self.settings.party, len(self.workers.intake.owners),
                 len(self.workers.sealing.owners))
        last_scan = last_sweep = last_poll = -1e9
        self.workers.start()
        if self.listener.start():
            log.info("listening for work from other nodes")
        try:
            while not self.stopping.is_set():
                if time.monotonic() - last_sweep >= _SWEEP_SECONDS:
                    self._sweep()
                    last_sweep = time.monotonic()
                if time.monotonic() - last_scan >= self.settings.scan_interval_seconds:
                    self.tracker.scan()
                    last_scan = time.monotonic()
                # The polls keep their own cadence. A wake between them takes in what settled
                # (a file dropped) and dispatches only for another node's change: the workers
                # hand each transfer on to its next lane themselves.
                polling = time.monotonic() - last_poll >= self.settings.poll_seconds
                if polling:
                    last_poll = time.monotonic()
                    self.pickup.poll_due()  # never raises for a partner's problems
                    self.inbound_pickup.poll_due()  # never raises; before the inbox is read
                    arrivals.poll_inbound(self.rt)  # never raises
                    receipts.poll(self.rt)  # 受領確認: delivered → acknowledged; never raises
                if newly := self.workers.newly_awaiting():
                    # Statements of what the workers left awaiting witnesses; never raises.
                    self.approvals.publish_new(newly)
                if polling or self.signed.is_set():
                    self.signed.clear()
                    # Signatures dropped by witnesses; never raises. One that counted is
                    # handed on at once; the ledger and the other statements wait for the poll.
                    if self.approvals.poll(regular=polling).accepted:
                        self.changed.set()
                self.workers.take_in(self.tracker)
                if polling or self.changed.is_set():
                    self.changed.clear()
                    self.workers.dispatch()
                if polling:
                    notices.sweep_due(self.rt)  # never raises; expiry, then people told
                    self.rt.heartbeat()  # `tachiai nodes`; every few seconds, never raises
                self.checkpoints.notify()  # cheap; the service signs at most a few per second
                wait = max(0.01, last_poll + self.settings.poll_seconds - time.monotonic())
                deadline = self.tracker.next_deadline()
                if deadline is not None:
                    wait = min(wait, max(deadline, 0.05))
                self.tracker.wake.wait(wait)
                self.tracker.wake.clear()
        finally:
            self.listener.stop()
            self.workers.stop()  # running steps finish or give their claims back
            self.tracker.stop_watching()
            self.rt.flush()
            self.checkpoints.stop()  # signs a last checkpoint
            log.info("tachiai stopped; every transfer is in a recorded state")

    def _signed(self, path: Path) -> None:
        """The watcher saw a file written or moved into the approvals folder."""
        if approval_folder.signature_id(path.name) is not None:
            self.signed.set()
            self.tracker.wake.set()

    def _sweep(self) -> None:
        try:
            schedule_sweep.sweep_late(self.rt)
        except TachiaiError as exc:
            log.error("the schedule sweep failed: %s", exc.diagnostics())
        if self.recover is not None:
            try:
                self.recover(self.rt)  # a command killed while the daemon runs
            except TachiaiError as exc:
                log.error("recovering an interrupted command failed: %s", exc.diagnostics())


def make_outbox(path: Path, root: Path) -> None:
    """Create `path` and the folders between it and `root`, each made here set to OUTBOX_MODE
    whatever the umask; folders that exist keep the mode an administrator gave them."""
    root.parent.mkdir(parents=True, exist_ok=True)
    made = []
    for folder in reversed([p for p in (path, *path.parents) if p == root or root in p.parents]):
        try:
            folder.mkdir()  # takes the group (and set-group-ID) of a set-group-ID parent
        except FileExistsError:
            continue
        made.append(folder)
    for folder in made:  # after every mkdir, so each took its group from its parent
        try:
            os.chmod(folder, OUTBOX_MODE)
        except PermissionError:
            # systemd's RestrictSUIDSGID=yes refuses the set-group-ID bit; the group the
            # folder took from its parent stays, and group rwx is what senders need.
            os.chmod(folder, OUTBOX_MODE & 0o777)


class SignalRelay:
    """Signals handed to a thread of their own, which calls `on_signal(signum)`.

    A Python signal handler runs in the main thread between two of its bytecodes, wherever
    that thread is: inside `Event.wait` too, holding the lock of the event's condition. A
    handler that set that event itself (stopping sets the loop's wake) would wait for ever for
    a lock its own thread holds: a daemon that does not stop on SIGTERM, seen once in some
    hundreds of stops on a busy machine. This handler only writes the signal's number into a
    pipe, which takes no lock; the relay's thread reads it and calls `on_signal`."""

    def __init__(self, on_signal: Callable[[int], None]) -> None:
        self._on_signal = on_signal
        self._read, self._write = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self._write, False)
        self._previous: dict[int, Any] = {}
        self._thread = threading.Thread(target=self._relay, name="signals", daemon=True)
        self._thread.start()

    def install(self, *signums: int) -> None:
        """Handle `signums` (from the main thread) until `close`."""
        for signum in signums:
            self._previous[signum] = signal.signal(signum, self.handler)

    def handler(self, signum: int, _frame: FrameType | None = None) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe: one more adds nothing
            os.write(self._write, bytes([signum]))

    def close(self) -> None:
        """The handlers there were before `install`, and the thread ended."""
        for signum, previous in self._previous.items():
            # None: a handler not set from Python; the default stands in for it.
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        os.close(self._write)  # after: no handler writes into a number reused by another file
        self._thread.join()
        os.close(self._read)

    def _relay(self) -> None:
        while data := os.read(self._read, 64):
            for signum in data:
                self._on_signal(signum)


def run(settings: Settings, recover: Callable[[Runtime], object] | None = None) -> None:
    """Lock the state directory, then run the daemon until it is stopped (`recover`: see
    `Daemon.run`).

    Raises:
        AlreadyRunning: another daemon holds this state directory (nothing was touched).
        TachiaiError: whatever makes running impossible (see `Daemon.run`).
    """
    # First, before the database is opened: two daemons on one SQLite state would both claim
    # and sweep it. The lock lives as long as this process (the kernel drops it on any exit).
    with daemon_lock.acquire(settings.state_dir, settings.daemon_lock_file):
        daemon = Daemon(settings)
        relay = SignalRelay(daemon.stop)
        relay.install(signal.SIGTERM, signal.SIGINT)
        # `kill -USR1 PID`: every thread's stack to stderr (the journal), for a daemon that
        # seems stuck; it goes on running.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        try:
            daemon.run(recover)
        finally:
            relay.close()
