"""`tachiai partners test NAME` against real servers: OpenSSH sshd (the pinned key, a changed
host key, a wrong user, nobody listening) and aiosmtpd with STARTTLS; and a local folder.

Each test leaves nothing behind at the partner and records `partner.tested` in the ledger.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Demo
from tests.gateway.conftest import needs_sshd
from tests.gateway.transports.servers import SmtpServer, Sshd, free_port

OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH9rGilOgv4wsUiJDjQUzbJfzahVqKx31NxqlXPuBpoO"


def _recipient(demo: Demo, body: str) -> None:
    text = demo.config.read_text(encoding="utf-8")
    head = text.split("[recipients.nhi-central]")[0]
    demo.config.write_text(head + "[recipients.nhi-central]\n" + body, encoding="utf-8")


def _sftp(sshd: Sshd, folder: Path, **changes: object) -> str:
    values: dict[str, object] = {
        "host": "127.0.0.1", "port": sshd.port, "user": sshd.user,
        "key_file": str(sshd.client_key), "known_hosts": sshd.known_hosts,
        "remote_dir": str(folder), "timeout_seconds": 10,
    }
    values.update(changes)
    lines = ['transport = "sftp"', 'password_channel = { kind = "retrieval" }']
    lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _tested(demo: Demo) -> list[str]:
    """The ledger's partner.tested lines."""
    out = demo.cli("audit", "log", check=True).stdout
    return [line for line in out.splitlines() if "partner.tested" in line]


@pytest.mark.slow
@needs_sshd
def test_the_pinned_server_passes_every_step_and_keeps_nothing(
    demo: Demo, sshd: Sshd
) -> None:
    folder = sshd.folder("inbox")
    _recipient(demo, _sftp(sshd, folder))
    result = demo.cli("partners", "test", "nhi-central")
    assert result.returncode == 0, result.stderr
    for step in ("connect", "check the host key", "authenticate", "write a probe file",
                 "remove the probe file"):
        assert f"ok     {step} (" in result.stdout
    assert "outcome: ok" in result.stdout
    assert list(folder.iterdir()) == []
    assert len(_tested(demo)) == 1


@pytest.mark.slow
@needs_sshd
def test_a_changed_host_key_is_refused_with_exit_1(demo: Demo, sshd: Sshd) -> None:
    folder = sshd.folder("inbox")
    _recipient(demo, _sftp(sshd, folder, known_hosts=f"[127.0.0.1]:{sshd.port} {OTHER_KEY}"))
    result = demo.cli("partners", "test", "nhi-central", "--json")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["outcome"] == "host_key_refused"
    assert data["steps"][-1] == {"step": "check the host key", "ok": False,
                                 "ms": data["steps"][-1]["ms"]}
    assert "is not the pinned one" in result.stderr
    assert f"[127.0.0.1]:{sshd.port}" in result.stderr
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1" in result.stderr
    assert list(folder.iterdir()) == []
    assert len(_tested(demo)) == 1


@pytest.mark.slow
@needs_sshd
def test_a_wrong_user_is_refused_with_exit_1(demo: Demo, sshd: Sshd) -> None:
    _recipient(demo, _sftp(sshd, sshd.folder("inbox"), user="someone-else"))
    result = demo.cli("partners", "test", "nhi-central")
    assert result.returncode == 1, result.stderr
    assert "FAILED authenticate" in result.stdout
    assert "refused our key for user someone-else" in result.stderr


@pytest.mark.slow
@needs_sshd
def test_nobody_listening_is_unreachable_with_exit_69(demo: Demo, sshd: Sshd) -> None:
    _recipient(demo, _sftp(sshd, sshd.folder("inbox"), port=free_port(),
                           known_hosts=sshd.host_key_line))
    result = demo.cli("partners", "test", "nhi-central")
    assert result.returncode == 69, result.stderr
    assert "FAILED connect" in result.stdout
    assert "outcome: unreachable" in result.stdout


@pytest.mark.slow
def test_a_test_mail_goes_through_the_relay_over_starttls(demo: Demo, smtp: SmtpServer) -> None:
    _recipient(demo, (
        'transport = "mail"\n'
        f'relay = "smtp://127.0.0.1:{smtp.port}"\n'
        'starttls = "required"\n'
        f'ca_file = "{smtp.cert}"\n'
        'from = "isa-gw@isa.example.go.jp"\n'
        'to = ["kanri@nhi.example.or.jp"]\n'
        'password_channel = { kind = "retrieval" }\n'
    ))
    result = demo.cli("partners", "test", "nhi-central")
    assert result.returncode == 0, result.stderr
    assert "ok     connect to the relay (TLS, login)" in result.stdout
    assert len(smtp.received) == 1 and smtp.received[0].tls
    message = smtp.received[0].message()
    assert "route test" in str(message["Subject"])
    assert not list(message.iter_attachments())
    assert len(_tested(demo)) == 1


def test_a_local_folder_route_writes_and_removes_a_probe(demo: Demo) -> None:
    result = demo.cli("partners", "test", "nhi-central")
    assert result.returncode == 0, result.stderr
    assert "ok     write a probe file" in result.stdout
    assert "ok     remove the probe file" in result.stdout
    assert list(demo.inbox.iterdir()) == []
    assert len(_tested(demo)) == 1
