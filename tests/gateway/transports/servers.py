"""Real servers on 127.0.0.1 for the transport tests and the benchmark: OpenSSH sshd, aiosmtpd.

`Sshd` runs `sshd -D -e -f CONFIG` as root with its own host key, its own authorized_keys,
`StrictModes no` and the in-process `internal-sftp` subsystem; the client logs in as the
unprivileged user `nobody`, so file permissions on the server side mean what they say.
`SmtpServer` is aiosmtpd with STARTTLS on a self-signed certificate made with `cryptography`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from gateway.config.routes import SftpEndpoint

SFTP_USER = "nobody"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ssh_keygen(path: Path, comment: str = "tachiai-test") -> str:
    """A fresh ed25519 key at `path` (0600); returns the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return Path(f"{path}.pub").read_text().strip()


class Sshd:
    """One OpenSSH sshd on 127.0.0.1 and the folders it serves (under a world-traversable dir)."""

    def __init__(self, port: int | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tachiai-sshd-"))
        os.chmod(self.root, 0o755)
        self.port = port or free_port()
        self.user = SFTP_USER
        self.uid = pwd.getpwnam(SFTP_USER).pw_uid
        self.process: subprocess.Popen[bytes] | None = None
        conf = self.root / "conf"
        conf.mkdir(mode=0o755)
        self.host_key_line = ssh_keygen(conf / "host_ed25519_key", "host").rsplit(" ", 1)[0]
        self.client_key = self.root / "client_key"
        client_pub = ssh_keygen(self.client_key)
        self.authorized_keys = conf / "authorized_keys"
        self.authorized_keys.write_text(client_pub + "\n")
        os.chmod(self.authorized_keys, 0o644)
        self.config = conf / "sshd_config"
        self.config.write_text(f"""\
Port {self.port}
ListenAddress 127.0.0.1
HostKey {conf}/host_ed25519_key
PidFile {conf}/sshd.pid
AuthorizedKeysFile {self.authorized_keys}
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers {SFTP_USER}
Subsystem sftp internal-sftp
ForceCommand internal-sftp
LogLevel ERROR
""")
        self.log = self.root / "sshd.log"

    @property
    def known_hosts(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key_line}"

    def endpoint(self, folder: Path | str, **changes: object) -> SftpEndpoint:
        """Our client's settings for this server: its pinned host key, our key, `folder`."""
        values: dict[str, object] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "key_file": self.client_key,
            "host_keys": (self.host_key_line,),
            "remote_dir": str(folder),
            "timeout_seconds": 10.0,
        }
        values.update(changes)
        return SftpEndpoint(**values)  # type: ignore[arg-type]

    def folder(self, name: str, owner_uid: int | None = None) -> Path:
        """A folder on the 'server', owned by the SFTP user unless told otherwise."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self.uid if owner_uid is None else owner_uid, -1)
        os.chmod(path, 0o755)
        return path

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation folder
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        log = open(self.log, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(self.config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def kill(self) -> None:
        """SIGKILL sshd and every session process it forked (a crash of the server)."""
        if self.process is None:
            return
        for pid in [*_descendants(self.process.pid), self.process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        self.kill()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def self_signed(folder: Path, host: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate and key for `host` and 127.0.0.1, made with `cryptography`."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "relay.crt", folder / "relay.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)
    return cert_path, key_path


@dataclass
class Received:
    envelope_from: str
    envelope_to: list[str]
    data: bytes
    tls: bool

    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpServer:
    """aiosmtpd on 127.0.0.1 with STARTTLS (optional), collecting every mail it accepts."""

    folder: Path
    starttls: bool = True
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    cert: Path | None = None
    _controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        server = self

        class Handler:
            async def handle_DATA(self, smtp_server: Any, session: Any, envelope: Any) -> str:
                server.received.append(
                    Received(
                        envelope.mail_from,
                        list(envelope.rcpt_tos),
                        bytes(envelope.content),
                        session.ssl is not None,
                    )
                )
                return "250 OK"

        context = None
        if self.starttls:
            self.cert, key = self_signed(self.folder)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.cert), str(key))
        self._controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=context,
            require_starttls=self.starttls,
            ready_timeout=60,  # aiosmtpd's 5 s is short for a busy machine
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
