"""Fault injection for the crash-recovery tests: die like `kill -9` at a named point.

Set TACHIAI_FAULT_CRASH_AT to a point's name (e.g. "after-seal-write") and the process sends
itself SIGKILL when it reaches that point. Set TACHIAI_FAULT_FAIL to "STEP:FILE_NAME" (e.g.
"seal:broken.csv") and that outbound step raises an unexpected error for that file alone.
Unset, each costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "TACHIAI_FAULT_CRASH_AT"
FAIL_ENV = "TACHIAI_FAULT_FAIL"
#: The outbound steps `fail_point` can break (gateway.outbound.pipeline).
STEPS = ("quarantine", "check", "seal", "deliver")
POINTS = ("after-intent", "after-spool-move", "after-seal-write", "after-deliver",
          # gateway.evidence.recorder: the events are in the ledger, not yet in its record
          "after-ledger-append")
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
