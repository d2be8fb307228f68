"""End to end through the real CLI and daemon: SFTP delivery, password retrieval, refusals.

A witnessed transfer is delivered over SFTP to a real sshd, its password kept for retrieval by
a designated receiving handler's signed request; a changed host key fails the transfer at once
(recorded with both fingerprints) and `tachiai transfers retry` sends it after the fix; the
`age` profile delivers a file that `age -d` opens with the receiving handler's identity.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import pyzipper
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.config.routes import host_fingerprint, key_blob
from gateway.identity import age
from tests.conftest import GOOD_ROWS, Demo, csv_bytes, needs_7zz, sealed_files
from tests.gateway.conftest import needs_sshd
from tests.gateway.transports.servers import SmtpServer, Sshd, ssh_keygen

pytestmark = pytest.mark.slow


def _use_sftp(demo: Demo, sshd: Sshd, inbox: Path, known_hosts: str) -> None:
    text = demo.config.read_text(encoding="utf-8")
    start = text.index("[recipients.nhi-central]")
    demo.config.write_text(
        text[:start]
        + f"""[recipients.nhi-central]
transport = "sftp"
host = "127.0.0.1"
port = {sshd.port}
user = "{sshd.user}"
key_file = "{sshd.client_key}"
known_hosts = "{known_hosts}"
remote_dir = "{inbox}"
attempts = 3
password_channel = {{ kind = "retrieval" }}
""",
        encoding="utf-8",
    )


def _approved(demo: Demo, data: bytes) -> str:
    demo.drop("status-change-2026-10.csv", data)
    (transfer,) = demo.wait_state("awaiting_approval")
    approve = demo.cli("approve", str(transfer["id"]), "--key", str(demo.key("suzuki")))
    assert approve.returncode == 0, approve.stderr
    return str(transfer["id"])


@needs_sshd
@needs_7zz
def test_sftp_delivery_and_password_retrieval_by_a_receiving_handler(
    demo: Demo, sshd: Sshd, tmp_path: Path
) -> None:
    inbox = sshd.folder("inbox")
    _use_sftp(demo, sshd, inbox, sshd.known_hosts)
    data = csv_bytes(GOOD_ROWS)
    demo.start()
    tid = _approved(demo, data)
    (done,) = demo.wait_state("delivered")
    (name,) = [p.name for p in sealed_files(inbox)]
    assert name == f"status-change-2026-10.csv.{tid}.zip"
    assert done["delivered_path"].endswith(f"{inbox}/{name}")
    assert done["password_path"] == "retrieval"

    refused = demo.cli("password", tid, "--key", str(demo.key("suzuki")))
    assert refused.returncode == 1 and "not a designated receiving handler" in refused.stderr
    got = demo.cli("password", tid, "--key", str(demo.key("takahashi")))
    assert got.returncode == 0, got.stderr
    password = got.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9]{24}", password)
    subprocess.run(
        ["7zz", "x", "-y", f"-o{tmp_path / 'opened'}", f"-p{password}", str(inbox / name)],
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "opened" / "status-change-2026-10.csv").read_bytes() == data
    again = demo.cli("password", tid, "--key", str(demo.key("takahashi")))
    assert again.returncode == 75 and "already retrieved" in again.stderr

    log = demo.cli("audit", "log", "--json", check=True).stdout
    assert password not in log, "no password in the ledger"
    assert password not in demo.daemon_log()
    kinds = [line.split()[2] for line in demo.cli("audit", "log", check=True).stdout.splitlines()]
    for kind in ("password.issued", "transfer.delivered", "password.refused", "password.retrieved"):
        assert kind in kinds
    assert demo.cli("audit", "verify").returncode == 0


@needs_sshd
def test_a_changed_host_key_fails_at_once_and_retry_sends_after_the_fix(
    demo: Demo, sshd: Sshd, tmp_path: Path
) -> None:
    inbox = sshd.folder("inbox")
    impostor = ssh_keygen(tmp_path / "impostor").rsplit(" ", 1)[0]
    _use_sftp(demo, sshd, inbox, f"[127.0.0.1]:{sshd.port} {impostor}")
    demo.start()
    tid = _approved(demo, csv_bytes(GOOD_ROWS))
    (failed,) = demo.wait_state("failed")
    assert failed["id"] == tid and list(inbox.iterdir()) == []
    log = demo.cli("audit", "log", "--json", check=True).stdout
    assert "transport.host_key_refused" in log
    assert host_fingerprint(key_blob(impostor)) in log
    assert host_fingerprint(key_blob(sshd.host_key_line)) in log
    assert log.count("delivery.retry") == 0, "a refused host key is never retried blindly"
    demo.stop()

    _use_sftp(demo, sshd, inbox, sshd.known_hosts)  # the operator pins the right key
    retried = demo.cli("transfers", "retry", tid)
    assert retried.returncode == 0, retried.stderr
    assert demo.show(tid)["state"] == "sealed"
    demo.start()
    demo.wait_state("delivered")
    assert len(sealed_files(inbox)) == 1
    assert "transfer.retried" in demo.cli("audit", "log", check=True).stdout
    assert demo.cli("transfers", "retry", tid).returncode == 75


@pytest.mark.skipif(shutil.which("age") is None, reason="age is not installed")
def test_age_profile_delivers_a_file_age_opens(demo: Demo, tmp_path: Path) -> None:
    bundled = Path(__file__).resolve().parents[3] / "policies" / "agreements"
    copy = demo.root / "agreements"
    shutil.copytree(bundled, copy)  # the agreement's side files (delegations) come along
    path = copy / "isa-nhi-status-loss.toml"
    agreement = path.read_text(encoding="utf-8")
    assert 'encryption = "zip-aes256"' in agreement
    path.write_text(
        agreement.replace('encryption = "zip-aes256"', 'encryption = "age"'), encoding="utf-8"
    )
    config = demo.config.read_text(encoding="utf-8")
    demo.config.write_text(
        config.replace('agreements = ["isa-nhi-status-loss"]', f'agreements = ["{path}"]'),
        encoding="utf-8",
    )
    key = X25519PrivateKey.generate()
    identity = tmp_path / "takahashi.age"
    identity.write_text(age.identity_string(key) + "\n")
    registry = demo.root / "demo" / "registry.toml"
    text = registry.read_text(encoding="utf-8")
    at = text.index('name = "takahashi"')
    registry.write_text(
        text[:at] + f'age_recipient = "{age.recipient_string(key)}"\n' + text[at:], encoding="utf-8"
    )
    data = csv_bytes(GOOD_ROWS)
    demo.start()
    tid = _approved(demo, data)
    (done,) = demo.wait_state("delivered")
    delivered = Path(done["delivered_path"])
    assert delivered.name == f"status-change-2026-10.csv.{tid}.age"
    assert done["password_path"] is None and not list(demo.passwords.iterdir())
    opened = subprocess.run(
        ["age", "-d", "-i", str(identity), str(delivered)], capture_output=True, check=True
    )
    assert opened.stdout == data
    log = demo.cli("audit", "log", "--json", check=True).stdout
    assert '"age_recipients"' in log and "password.issued" not in log


def test_mail_delivery_through_the_daemon_with_the_password_in_its_own_folder(
    demo: Demo, smtp: SmtpServer, tmp_path: Path
) -> None:
    text = demo.config.read_text(encoding="utf-8")
    start = text.index("[recipients.nhi-central]")
    demo.config.write_text(
        text[:start]
        + f"""[recipients.nhi-central]
transport = "mail"
relay = "127.0.0.1"
port = {smtp.port}
from = "isa-gateway@example.go.jp"
to = ["kanri@nhi-central.example.or.jp"]
starttls = "required"
ca_file = "{smtp.cert}"
password_channel = "demo/recipients/nhi-central/passwords"
""",
        encoding="utf-8",
    )
    data = csv_bytes(GOOD_ROWS)
    demo.start()
    tid = _approved(demo, data)
    (done,) = demo.wait_state("delivered")
    (mail,) = smtp.received
    assert mail.tls
    password = Path(done["password_path"]).read_text().strip()
    assert password.encode() not in mail.data
    (attachment,) = [p for p in mail.message().walk() if p.get_filename()
                     and not p.get_filename().endswith(".manifest.json")]
    assert attachment.get_filename() == f"status-change-2026-10.csv.{tid}.zip"
    blob = attachment.get_payload(decode=True)
    assert isinstance(blob, bytes)
    with pyzipper.AESZipFile(io.BytesIO(blob)) as zf:
        zf.setpassword(password.encode())
        assert zf.read("status-change-2026-10.csv") == data
    log = demo.cli("audit", "log", "--json", check=True).stdout
    assert '"transport": "mail"' in log and password not in log
