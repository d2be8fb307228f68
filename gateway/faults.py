"""Fault injection for the crash-recovery tests: die like `kill -9` at a named point.

Set TACHIAI_FAULT_CRASH_AT to a point's name (e.g. "after-seal-write") and the process sends
itself SIGKILL when it reaches that point. Set TACHIAI_FAULT_FAIL to "STEP:FILE_NAME" (e.g.
"seal:broken.csv") and that outbound step raises an unexpected error for that file alone.
Set TACHIAI_FAULT_PAUSE to "POINT:SECONDS" (e.g. "upload-block:3") and the process, the first
time it reaches that point, logs that it is paused there and sleeps SECONDS: a test can then
kill it while it is provably inside that step (e.g. mid-upload); with TACHIAI_FAULT_RESUME
naming a file, the pause ends as soon as that file exists (a test looks, then lets it go on).
Unset, each costs one dictionary lookup.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

log = logging.getLogger(__name__)

ENV = "TACHIAI_FAULT_CRASH_AT"
FAIL_ENV = "TACHIAI_FAULT_FAIL"
PAUSE_ENV = "TACHIAI_FAULT_PAUSE"
RESUME_ENV = "TACHIAI_FAULT_RESUME"
#: Where `pause_point` can pause: inside an SFTP upload, after its first block is written;
#: inside a seal, after its first chunk is encrypted.
PAUSE_POINTS = ("upload-block", "seal-block")
#: What a paused process logs, for the test that waits to kill it there.
PAUSED_MARK = "fault injection: paused at"
#: The outbound steps `fail_point` can break (gateway.outbound.pipeline).
STEPS = ("quarantine", "check", "seal", "deliver")
POINTS = ("after-intent", "after-spool-move", "after-seal-write", "after-deliver",
          # gateway.outbound.delivery_step: delivered (the claim ended with it), the spool's
          # password not yet erased
          "after-delivered",
          # gateway.evidence.recorder: the events are in the ledger, not yet in its record
          "after-ledger-append",
          # gateway.workers: sealed and committed, not yet handed to the delivery lane
          "hand-on")
#: `tachiai holdings forward` (gateway.forwarding): after its intent is written, after each
#: child is taken in, after the fan-out is recorded, after each child is checked.
FANOUT_POINTS = ("fanout-after-intent", "fanout-after-child", "fanout-after-record",
                 "fanout-after-check")
#: The receiving side's SFTP pickup (gateway.inbound.pickup): after the download is synced and
#: journalled, and after the files are renamed into the inbox and recorded; both come before
#: the remote copies are removed.
PICKUP_POINTS = (
    "after-delivery-fetch",
    "after-delivery-land",
    "after-password-fetch",
    "after-password-land",
)


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


class InjectedFault(RuntimeError):
    """The unexpected error `fail_point` raises: stands for a bug met with one file."""


def fail_point(step: str, file_name: str) -> None:
    """Raises: InjectedFault when FAIL_ENV names this step and file."""
    if os.environ.get(FAIL_ENV) == f"{step}:{file_name}":
        raise InjectedFault(f"injected fault in step {step}")


_paused: set[str] = set()
_paused_lock = threading.Lock()


def pause_point(name: str) -> None:
    """Sleep the seconds PAUSE_ENV gives for this point, the first time this process is here."""
    value = os.environ.get(PAUSE_ENV)
    if not value:
        return
    point, _, seconds = value.partition(":")
    if point != name:
        return
    with _paused_lock:
        if name in _paused:
            return
        _paused.add(name)
    log.warning("%s %s for %s s", PAUSED_MARK, name, seconds)
    until = time.monotonic() + float(seconds or 1)
    resume = os.environ.get(RESUME_ENV)
    while (left := until - time.monotonic()) > 0:
        if resume and os.path.exists(resume):
            return
        time.sleep(min(left, 0.1))
