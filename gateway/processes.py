"""Whether a process of this host still runs: how a claim, a progress record or a forward's
intent left by a process tells a dead owner from a live one."""

from __future__ import annotations

import os

__all__ = ["alive"]


def alive(pid: int) -> bool:
    """True while process `pid` exists on this host (someone else's process counts as alive:
    what it owns waits for its lease or deadline instead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
