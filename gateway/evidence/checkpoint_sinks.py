"""The places outside the database that receive every signed checkpoint, apart from the
service that signs: a local folder (`DirectorySink`) and syslog (`SyslogSink`); an SFTP folder
is `gateway.evidence.checkpoint_sftp.SftpSink`. Each has a name, `publish` and `close`.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Protocol

from audit.checkpoints import (
    HISTORY_DIR,
    LATEST_FILE,
    PUBLIC_KEY_FILE,
    SignedCheckpoint,
    history_name,
    read_places,
    syslog_line,
)
from audit.notes import NoteVerifier
from gateway.errors import ConfigError
from gateway.i18n import N_


class CheckpointSink(Protocol):
    """A place outside the database that receives every checkpoint (folder, syslog, SFTP…)."""

    name: str

    def publish(self, signed: SignedCheckpoint, verifier: NoteVerifier) -> None:
        """Raises: OSError when the place cannot be written (retried with the next one)."""
        ...

    def close(self, timeout: float) -> bool:
        """Finish writing (within `timeout` seconds) at shutdown; False if something was left."""
        ...


class DirectorySink:
    """A folder: `checkpoint` (the latest, replaced atomically), `history/DAY.checkpoints`
    (every one, appended) and `ledger.pub` (the public key auditors verify with)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = str(folder)

    def publish(self, signed: SignedCheckpoint, verifier: NoteVerifier) -> None:
        (self.folder / HISTORY_DIR).mkdir(parents=True, exist_ok=True)
        pub = self.folder / PUBLIC_KEY_FILE
        if not pub.is_file() or pub.read_text(encoding="utf-8").strip() != verifier.to_text():
            write_atomic(pub, verifier.to_text() + "\n", 0o644)
        history = self.folder / HISTORY_DIR / history_name(signed.checkpoint.time_ns)
        fd = os.open(history, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (signed.note + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        write_atomic(self.folder / LATEST_FILE, signed.note, 0o644)

    def close(self, timeout: float) -> bool:
        return True  # each publish was written and fsynced before it returned

    def notes(self) -> list[tuple[str, str]]:
        if not self.folder.is_dir():
            return []
        return read_places([self.folder])[0]


class SyslogSink:
    """Syslog (a local socket, UDP or TCP): one line per checkpoint, the note in base64.

    Sent at facility authpriv, severity notice, so the receiving syslog can keep it apart.
    """

    PRIORITY = 10 * 8 + 5  # RFC 5424 §6.2.1: facility authpriv (10), severity notice (5)

    def __init__(self, target: str) -> None:
        """Raises: ConfigError when `target` is not a socket path or udp:// or tcp://."""
        self.name = f"syslog {target}"
        self.family, self.kind = socket.AF_UNIX, socket.SOCK_DGRAM
        self.address: str | tuple[str, int] = target
        if "://" in target:
            scheme, _, rest = target.partition("://")
            host, _, port = rest.rpartition(":")
            if scheme not in ("udp", "tcp") or not host or not port.isdigit():
                raise ConfigError(
                    N_("ledger syslog {target} is not udp://HOST:PORT, tcp://HOST:PORT or a "
                       "socket path").format(target=repr(target))
                )
            self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.kind = socket.SOCK_STREAM if scheme == "tcp" else socket.SOCK_DGRAM
            self.address = (host.strip("[]"), int(port))
        elif not target.startswith("/"):
            raise ConfigError(N_("ledger syslog {target} is not an absolute socket path").format(
                                  target=repr(target)))

    def publish(self, signed: SignedCheckpoint, verifier: NoteVerifier) -> None:
        message = f"<{self.PRIORITY}>tachiai[{os.getpid()}]: {syslog_line(signed)}".encode()
        with socket.socket(self.family, self.kind) as sock:
            sock.settimeout(5.0)
            if self.kind == socket.SOCK_STREAM:  # RFC 6587 non-transparent framing
                sock.connect(self.address)
                sock.sendall(message + b"\n")
            else:
                sock.sendto(message, self.address)

    def close(self, timeout: float) -> bool:
        return True  # each publish was sent before it returned


def write_atomic(path: Path, text: str, mode: int) -> None:
    """Replace `path` with `text` (mode `mode`), fsynced with its folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
