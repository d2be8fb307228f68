"""Fixtures: a real OpenSSH sshd and a real SMTP server on 127.0.0.1, started and stopped here."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.transports.servers import SmtpServer, Sshd

needs_sshd = pytest.mark.skipif(
    shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists(),
    reason="sshd is not installed (scripts/test installs openssh-server)",
)


@pytest.fixture
def sshd() -> Iterator[Sshd]:
    server = Sshd()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path / "smtp")
    server.folder.mkdir()
    server.start()
    yield server
    server.stop()
