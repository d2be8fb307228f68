"""Fixtures: a real SMTP server on 127.0.0.1, started and stopped here (sshd: tests/gateway)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.transports.servers import SmtpServer


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path / "smtp")
    server.folder.mkdir()
    server.start()
    yield server
    server.stop()
