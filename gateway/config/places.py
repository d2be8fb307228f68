"""Where a gateway keeps its state, read from tachiai.toml without the rest of it.

A witness's `tachiai approve ID --key KEY` hands a signature to the running daemon
(gateway.outbound.handover): it needs to know only where the approvals folder and the daemon
lock are. Building the whole `Settings` (gateway.config.settings) costs it more start-up than
the rest of its work, so `read_places` reads those few keys alone. The rules that make a place
of a key are here, once: `Settings` derives the same places with the same functions, and a test
holds the two equal. Imports nothing of the gateway.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import NamedTuple

#: The configuration file when neither --config nor $TACHIAI_CONFIG names one.
DEFAULT_CONFIG = "tachiai.toml"


class Places(NamedTuple):
    """The places a command needs to reach the running daemon."""

    state_dir: Path
    approvals_folder: Path
    daemon_lock_file: str  # its name in state_dir


def config_path_from(arg: str | None) -> Path:
    """The config file named on the command line, in $TACHIAI_CONFIG, or ./tachiai.toml."""
    return Path(arg or os.environ.get("TACHIAI_CONFIG") or DEFAULT_CONFIG).absolute()


def resolved(base: Path, value: str) -> Path:
    """A path of the file, which is relative to the file's own folder (`base`)."""
    return (base / value).resolve()


def approvals_folder(state_dir: Path, approvals_dir: Path | None) -> Path:
    """[gateway] approvals_dir, else STATE_DIR/approvals."""
    return approvals_dir or state_dir / "approvals"


def daemon_lock_file(database_url: str, node_name: str) -> str:
    """The daemon lock's file in state_dir: one per state on SQLite; on PostgreSQL one per
    node (node_name, else the host name), as the nodes may share the state folder."""
    if not database_url:
        return "daemon.lock"
    node = node_name or os.uname().nodename
    return "daemon." + "".join(c if c.isalnum() or c in "-_." else "_" for c in node) + ".lock"


def read_places(path: Path) -> Places | None:
    """The places `path` configures; None when the file cannot be read, is not TOML, or gives
    one of their keys a value that is not plain (the whole settings say what is wrong, in
    their words: a caller that gets None loads them)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    gateway, database = raw.get("gateway", {}), raw.get("database", {})
    if not isinstance(gateway, dict) or not isinstance(database, dict):
        return None
    state, approvals = gateway.get("state_dir", "state"), gateway.get("approvals_dir")
    url, node = database.get("url", ""), gateway.get("node_name", "")
    if (not isinstance(state, str) or not state or not isinstance(url, str)
            or not isinstance(node, str) or not node.isprintable()
            or (approvals is not None and (not isinstance(approvals, str) or not approvals))):
        return None
    try:
        state_dir = resolved(path.parent, state)
        approvals_dir = resolved(path.parent, approvals) if approvals is not None else None
    except (ValueError, RuntimeError, OSError):  # a NUL in the name, a loop of links
        return None
    return Places(state_dir, approvals_folder(state_dir, approvals_dir),
                  daemon_lock_file(url, node))
