"""`tachiai agreements check` and `tachiai run` refuse a flow that cannot be delivered on paper:
a ZIP without a password route, an age flow nobody can open, a key file that is missing,
unreadable or open to others. Each refusal names the key and the fix."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from gateway.config import deliverability
from gateway.outbound.sealing import PASSWORD_PROFILES, PROFILES
from tests.conftest import AGREEMENT, Demo, tachiai_command
from tests.gateway.transports.servers import ssh_keygen

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH9rGilOgv4wsUiJDjQUzbJfzahVqKx31NxqlXPuBpoO"
BUNDLED = Path(__file__).resolve().parents[3] / "policies" / "agreements"


def _recipient(demo: Demo, body: str) -> None:
    """Replace the demo's [recipients.nhi-central] table with `body`."""
    text = demo.config.read_text(encoding="utf-8")
    head = text.split("[recipients.nhi-central]")[0]
    demo.config.write_text(head + "[recipients.nhi-central]\n" + body, encoding="utf-8")


def _sftp(key_file: str) -> str:
    return (
        'transport = "sftp"\nhost = "sftp.example.go.jp"\nport = 2222\nuser = "isa"\n'
        f'key_file = "{key_file}"\nknown_hosts = "[sftp.example.go.jp]:2222 {KEY}"\n'
        'remote_dir = "/inbox"\npassword_channel = { kind = "retrieval" }\n'
    )


def test_the_demo_can_be_delivered(demo: Demo) -> None:
    result = demo.cli("agreements", "check")
    assert result.returncode == 0, result.stderr
    assert "ok: routes: every flow of isa can be delivered" in result.stdout


def test_a_zip_route_without_a_password_channel_is_refused(demo: Demo) -> None:
    _recipient(demo, 'inbox = "demo/recipients/nhi-central/inbox"\n')
    result = demo.cli("agreements", "check")
    assert result.returncode == 1
    assert re.search(r"tachiai\.toml:\d+: recipients\.nhi-central\.password_channel: "
                     r".*zip-aes256", result.stderr)
    assert 'password_channel = { kind = "retrieval" }' in result.stderr


def test_an_age_flow_without_an_age_recipient_is_refused(demo: Demo) -> None:
    agreement = demo.root / "age-agreement.toml"
    text = (BUNDLED / f"{AGREEMENT}.toml").read_text(encoding="utf-8")
    agreement.write_text(text.replace('encryption = "zip-aes256"', 'encryption = "age"'),
                         encoding="utf-8")
    shutil.copy(BUNDLED / f"{AGREEMENT}.delegations.toml", demo.root)
    config = demo.config.read_text(encoding="utf-8")
    demo.config.write_text(config.replace(f'agreements = ["{AGREEMENT}"]',
                                          'agreements = ["age-agreement.toml"]'))
    result = demo.cli("agreements", "check")
    assert result.returncode == 1
    assert "registry.toml: handlers of nhi-central" in result.stderr
    assert 'add age_recipient = "age1…"' in result.stderr


def test_key_files_missing_or_open_to_others_are_refused(demo: Demo) -> None:
    _recipient(demo, _sftp("keys/sftp"))
    result = demo.cli("agreements", "check")
    assert result.returncode == 1
    assert "recipients.nhi-central.key_file:" in result.stderr
    assert "does not exist" in result.stderr
    (demo.root / "keys").mkdir()
    ssh_keygen(demo.root / "keys" / "sftp")
    os.chmod(demo.root / "keys" / "sftp", 0o644)
    result = demo.cli("agreements", "check")
    assert result.returncode == 1
    assert "has mode 0644" in result.stderr
    assert f"chmod 600 {demo.root / 'keys' / 'sftp'}" in result.stderr
    os.chmod(demo.root / "keys" / "sftp", 0o400)
    result = demo.cli("agreements", "check")
    assert result.returncode == 0, result.stderr


def test_a_missing_known_hosts_file_is_refused_with_keyscan(demo: Demo) -> None:
    _recipient(demo, _sftp("k").replace(f'"[sftp.example.go.jp]:2222 {KEY}"', '"partner.kh"'))
    result = demo.cli("agreements", "check")
    assert result.returncode == 78
    assert "recipients.nhi-central.known_hosts" in result.stderr
    assert f"ssh-keyscan -p 2222 sftp.example.go.jp >> {demo.root / 'partner.kh'}" in (
        result.stderr
    )


def test_run_refuses_to_start_with_a_route_that_cannot_deliver(demo: Demo) -> None:
    _recipient(demo, 'inbox = "demo/recipients/nhi-central/inbox"\n')
    result = subprocess.run(
        [*tachiai_command(), "run", "--config", str(demo.config)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 78
    assert "recipients.nhi-central.password_channel" in result.stderr
    assert "cannot deliver" in result.stderr


def test_every_profile_but_age_needs_a_password_route() -> None:
    # deliverability treats every profile but age as a ZIP with a password (without importing
    # the sealing layer); this holds the two together.
    assert set(PROFILES) - {"age"} == set(PASSWORD_PROFILES)


def test_a_private_file_must_be_0600_or_0400(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("x")
    for mode, usable in ((0o600, True), (0o400, True), (0o640, False), (0o700, False)):
        os.chmod(path, mode)
        assert (deliverability.private_file_problem(path) is None) is usable
