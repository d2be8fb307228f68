"""Fixtures for the gateway's tests: a real OpenSSH sshd on 127.0.0.1, started and stopped here
(used by the transports, the SFTP pickups and the SFTP checkpoint place)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import i18n
from tests.gateway.transports.servers import Sshd

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
def japanese(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process speaks Japanese for the test, English again after it."""
    monkeypatch.setenv("LANGUAGE", "ja")
    i18n.reload()
    yield
    monkeypatch.undo()
    i18n.reload()
