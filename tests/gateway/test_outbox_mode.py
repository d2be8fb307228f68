"""Under the unit's UMask=0077 the daemon still makes outboxes senders can write in: each
folder it creates is group rwx (and set-group-ID where allowed), by chmod, not by umask."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from gateway.config.settings import load_settings
from gateway.daemon import Daemon, make_outbox
from tests.conftest import AGREEMENT, FLOW, Demo


def test_outboxes_are_group_writable_under_umask_0077(demo: Demo) -> None:
    shutil.rmtree(demo.root / "outbox")
    old = os.umask(0o077)
    try:
        Daemon(load_settings(demo.config))
    finally:
        os.umask(old)
    for folder in (demo.root / "outbox", demo.root / "outbox" / AGREEMENT, demo.outbox):
        mode = stat.S_IMODE(folder.stat().st_mode)
        assert mode & 0o770 == 0o770, f"{folder}: {mode:04o}"
        assert mode & 0o007 == 0, f"{folder}: {mode:04o} (others must have nothing)"
    assert demo.outbox == demo.root / "outbox" / AGREEMENT / FLOW


def test_an_existing_outbox_keeps_the_mode_it_was_given(tmp_path: Path) -> None:
    root = tmp_path / "outbox"
    root.mkdir(mode=0o750)
    os.chmod(root, 0o750)
    old = os.umask(0o077)
    try:
        make_outbox(root / "a" / "f", root)
    finally:
        os.umask(old)
    assert stat.S_IMODE(root.stat().st_mode) == 0o750
    assert stat.S_IMODE((root / "a" / "f").stat().st_mode) & 0o770 == 0o770
