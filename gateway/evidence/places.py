"""How each checkpoint place stands, for `tachiai status`: a folder whose latest checkpoint is
missing, unreadable, not writable or behind the ledger's is failing.

Read-only: it signs and writes nothing. Remote places (SFTP folders, syslog) are not reached
from a command; they are listed as "remote" and their failures are in the daemon's log.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from audit.checkpoints import LATEST_FILE, parse
from audit.errors import AuditError
from audit.ledger import Ledger
from audit.notes import NoteError
from gateway.config.settings import Settings
from gateway.evidence.checkpointing import CheckpointSettings

#: A folder may lag the ledger's own copy by this much before it counts as failing (the daemon
#: writes at least every second while events arrive).
BEHIND_NS = 60 * 1_000_000_000


@dataclass(frozen=True)
class Place:
    place: str
    status: str  # "ok", "missing", "unreadable", "not-writable", "behind", "remote"
    latest_ns: int | None = None  # the time of its latest checkpoint
    size: int | None = None  # the ledger size its latest checkpoint covers

    @property
    def failing(self) -> bool:
        return self.status not in ("ok", "remote")


def places(gateway: Settings, ledger: Ledger) -> list[Place]:
    """Every configured checkpoint place and how it stands against the ledger's own copy."""
    settings = CheckpointSettings.from_settings(gateway)
    try:
        kept = ledger.checkpoints()
        head = parse(kept[-1][0], kept[-1][1], None).checkpoint if kept else None
    except (AuditError, NoteError):
        head = None
    out: list[Place] = []
    for folder in settings.directories:
        latest = folder / LATEST_FILE
        if not latest.is_file():
            out.append(Place(str(folder), "missing"))
            continue
        try:
            found = parse(latest.read_text(encoding="utf-8"), str(latest), None).checkpoint
        except (OSError, UnicodeDecodeError, NoteError):
            out.append(Place(str(folder), "unreadable"))
            continue
        status = "ok"
        if not os.access(folder, os.W_OK):
            status = "not-writable"
        elif head is not None and found.time_ns < head.time_ns - BEHIND_NS:
            status = "behind"
        out.append(Place(str(folder), status, found.time_ns, found.size))
    out.extend(Place(endpoint.url(), "remote") for endpoint in settings.sftp)
    if settings.syslog:
        out.append(Place(f"syslog {settings.syslog}", "remote"))
    return out
