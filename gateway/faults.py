"""Fault injection for the crash-recovery tests: die like `kill -9` at a named point.

Set TACHIAI_FAULT_CRASH_AT to a point's name (e.g. "after-seal-write") and the process sends
itself SIGKILL when it reaches that point. Unset, this costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "TACHIAI_FAULT_CRASH_AT"
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
