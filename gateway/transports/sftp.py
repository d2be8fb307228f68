"""SFTP (draft-ietf-secsh-filexfer-02, as OpenSSH serves it) over paramiko: deliver and fetch.

The server's host key must be one pinned in the configuration: an unknown or changed key is
refused (HostKeyRefused), never added. Uploads go to a temporary name, are checked (size, and
SHA-256 where the server offers the `check-file` extension) and then renamed to the final name
fixed by the transfer id; a later attempt resumes a partial upload and never leaves two copies.
A parcel's manifest is uploaded after the file is in place, the same way.
No paramiko exception leaves this module; no key or password is logged.
Over 400 lines for one reason: it is the one edge to paramiko, so every paramiko call and the
conversion of its errors stay inside it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import posixpath
import socket
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import paramiko

from gateway import faults, progress
from gateway.config.routes import SftpEndpoint, host_fingerprint, key_blob
from gateway.errors import PartnerUnavailable, TachiaiError
from gateway.i18n import N_
from gateway.transports import DeliveryRefused, HostKeyRefused, Parcel, Receipt

log = logging.getLogger(__name__)

#: Ciphers in order of preference: paramiko runs AES-GCM about twice as fast as AES-CTR
#: (LIBRARIES.md); all are also offered by OpenSSH 9.
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr")
_BLOCK = 1 << 20  # read from the spool in 1 MiB; paramiko splits into 32 KiB SFTP writes
_TAIL = 1 << 20  # on resume, this much of the partial upload is compared with our bytes
_HOST_KEY_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256")}


class SftpTransport:
    """Delivers parcels into one folder of one SFTP account."""

    kind = "sftp"

    def __init__(self, party: str, endpoint: SftpEndpoint) -> None:
        self.party = party
        self.endpoint = endpoint

    def send(
        self,
        parcel: Parcel,
        *,
        renamed_before: bool = False,
        committing: Callable[[str], None] | None = None,
    ) -> Receipt:
        """Upload to `.NAME.part`, resume if one is there, verify, rename to NAME.

        Raises:
            PartnerUnavailable: unreachable, cut off, timed out (retry later).
            DeliveryRefused: permission denied, no such folder, our key refused, or a file of
                other bytes already has the final name.
            HostKeyRefused: the server's host key is not the pinned one.
        """
        with Session(self.endpoint) as session:
            return session.upload(parcel, renamed_before=renamed_before, committing=committing)


def put_small(endpoint: SftpEndpoint, name: str, data: bytes) -> Receipt:
    """Upload a small document (a password) to NAME with mode 0600, via a temporary name.

    Raises:
        PartnerUnavailable / DeliveryRefused / HostKeyRefused: as for `SftpTransport.send`.
    """
    with Session(endpoint) as session:
        return session.put_bytes(name, data)


class Session:
    """One authenticated SFTP session; every foreign error is converted on its way out."""

    def __init__(
        self, endpoint: SftpEndpoint, on_step: Callable[[str], None] | None = None
    ) -> None:
        self.endpoint = endpoint
        # Told "connected", "host key pinned" and "authenticated" as each is done (for
        # `tachiai partners test`, which times each step).
        self.on_step = on_step or (lambda _step: None)
        self.fingerprint = ""
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def __enter__(self) -> Session:
        try:
            with self.converted("connect"):
                self._connect()
        except BaseException:
            # `with` calls no __exit__ when __enter__ fails: close the half-made transport
            # (a refused host key leaves its thread and socket running otherwise).
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        for closing in (self._sftp, self._transport):
            if closing is not None:
                # Closing a broken session may fail too; it is gone either way.
                with contextlib.suppress(Exception):
                    closing.close()

    @property
    def sftp(self) -> paramiko.SFTPClient:
        assert self._sftp is not None, "use Session as a context manager"
        return self._sftp

    @contextmanager
    def converted(self, doing: str, path: str = "") -> Iterator[None]:
        """Turn paramiko, socket and SFTP status errors into the gateway's, naming the place."""
        ep = self.endpoint
        where = f"{ep.user}@{ep.host}:{ep.port}{' ' + path if path else ''}"
        try:
            yield
        except TachiaiError:
            raise
        except paramiko.AuthenticationException as exc:
            raise DeliveryRefused(
                N_("the SFTP server {host}:{port} refused our key for user {user}").format(
                    host=ep.host, port=ep.port, user=ep.user),
                hint=N_("check that the public key of {key_file} is in the partner's "
                        "authorized_keys, then run `tachiai transfers retry ID`").format(
                         key_file=ep.key_file),
            ) from exc
        except PermissionError as exc:
            raise DeliveryRefused(
                N_("permission denied by the SFTP server ({doing} {where})").format(
                    doing=doing, where=where),
                hint=N_("ask the partner to let this account write (and rename) in the folder, "
                        "then run `tachiai transfers retry ID`"),
            ) from exc
        except FileNotFoundError as exc:
            raise DeliveryRefused(
                N_("no such file or folder on the SFTP server ({doing} {where})").format(
                    doing=doing, where=where),
                hint=N_("check remote_dir in the configuration with the partner"),
            ) from exc
        except (paramiko.SSHException, paramiko.SFTPError, EOFError, OSError) as exc:
            # Connection refused or reset, timeouts, a dropped session: try again later.
            reason = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
            raise PartnerUnavailable(
                N_("SFTP to {host}:{port} failed while trying to {doing}: {reason}").format(
                    host=ep.host, port=ep.port, doing=doing, reason=reason)
            ) from exc

    # -- connection -------------------------------------------------------------------------

    def _connect(self) -> None:
        ep = self.endpoint
        pkey = _load_key(ep.key_file)
        pinned = {key_blob(line): line for line in ep.host_keys}
        sock = socket.create_connection((ep.host, ep.port), timeout=ep.timeout_seconds)
        self.on_step("connected")
        transport = paramiko.Transport(sock)
        self._transport = transport
        transport.banner_timeout = ep.timeout_seconds
        transport.handshake_timeout = ep.timeout_seconds
        transport.auth_timeout = ep.timeout_seconds
        transport.channel_timeout = ep.timeout_seconds  # opening the session (default: 1 h)
        options = transport.get_security_options()
        # Offer only the host key algorithms of the pinned keys (as OpenSSH does for a host in
        # known_hosts), so the server shows the key we can check.
        wanted = [
            alg
            for line in ep.host_keys
            for alg in _HOST_KEY_ALGORITHMS.get(line.split()[0], (line.split()[0],))
        ]
        options.key_types = tuple(dict.fromkeys(a for a in wanted if a in options.key_types))
        options.ciphers = tuple(c for c in CIPHERS if c in options.ciphers)
        expected = tuple(host_fingerprint(b) for b in pinned)
        try:
            transport.start_client(timeout=ep.timeout_seconds)
        except paramiko.SSHException as exc:
            if "host key" in str(exc).lower():
                raise HostKeyRefused(
                    ep.host, ep.port, expected, "no host key of the pinned type"
                ) from exc
            raise
        if not transport.is_active() or not getattr(transport, "initial_kex_done", True):
            # start_client returns quietly when its timeout passes before the key exchange.
            raise PartnerUnavailable(
                N_("{host}:{port} did not finish the SSH handshake within {timeout_seconds:g} "
                   "s").format(host=ep.host, port=ep.port, timeout_seconds=ep.timeout_seconds)
            )
        offered = transport.get_remote_server_key()
        self.fingerprint = host_fingerprint(offered.asbytes())
        if offered.asbytes() not in pinned:
            raise HostKeyRefused(ep.host, ep.port, expected, self.fingerprint)
        self.on_step("host key pinned")
        transport.auth_publickey(ep.user, pkey)
        self.on_step("authenticated")
        sftp = paramiko.SFTPClient.from_transport(transport)
        if sftp is None:  # pragma: no cover - paramiko returns None only without a session
            raise PartnerUnavailable(N_("{host}:{port} opened no SFTP session").format(
                                         host=ep.host, port=ep.port))
        sftp.get_channel().settimeout(ep.timeout_seconds)
        self._sftp = sftp

    # -- upload -----------------------------------------------------------------------------

    def upload(
        self,
        parcel: Parcel,
        *,
        renamed_before: bool = False,
        committing: Callable[[str], None] | None = None,
    ) -> Receipt:
        """See `SftpTransport.send`."""
        ep = self.endpoint
        final = posixpath.join(ep.remote_dir, parcel.name)
        part = posixpath.join(ep.remote_dir, f".{parcel.name}.part")
        details: dict[str, str | int | bool] = {
            "host": ep.host,
            "port": ep.port,
            "user": ep.user,
            "host_key": self.fingerprint,
        }
        with self.converted("look for an earlier upload", final):
            done = self._stat(final)
            partial = self._stat(part)
        if done is not None:
            # A repeat after a crash between the rename and our record: the file is there.
            self._check_final(final, done, parcel)
            self._put_manifest(parcel)
            return Receipt("sftp", ep.url(parcel.name), {**details, "already_there": True})
        if renamed_before and partial is None:
            # We renamed it in place before; it is gone, so the partner has taken it.
            return Receipt("sftp", ep.url(parcel.name), {**details, "taken_by_partner": True})
        offset = 0
        if partial is not None:
            with self.converted("resume the partial upload", part):
                offset = self._resume_offset(part, partial, parcel)
        with self.converted("upload", part):
            self._copy(parcel.path, part, offset)
            uploaded = self.sftp.stat(part)
        if uploaded.st_size != parcel.size:
            raise PartnerUnavailable(
                N_("the upload to {host} has {st_size} bytes, not {size}; it is sent again").format(
                    host=ep.host, st_size=uploaded.st_size, size=parcel.size)
            )
        with self.converted("check the upload's SHA-256", part):
            hashed = self._server_hash(part)
        if hashed is not None and hashed != parcel.sha256:
            with self.converted("remove a damaged upload", part):
                self.sftp.remove(part)
            raise PartnerUnavailable(
                N_("the upload to {host} arrived with another SHA-256; it is sent again").format(
                    host=ep.host)
            )
        if committing is not None:
            committing(ep.url(parcel.name))
        with self.converted("rename the upload into place", final):
            self._rename(part, final)
            placed = self.sftp.stat(final)
        if placed.st_size != parcel.size:
            raise DeliveryRefused(
                N_("after the rename, {final} on {host} has {st_size} bytes, not {size}").format(
                    final=final, host=ep.host, st_size=placed.st_size, size=parcel.size)
            )
        details.update({"resumed_from": offset, "server_sha256": hashed is not None})
        self._put_manifest(parcel)
        return Receipt("sftp", ep.url(parcel.name), details)

    def _put_manifest(self, parcel: Parcel) -> None:
        """After the file is in place: its manifest, by the same temporary-name rule."""
        if parcel.manifest is not None:
            self.put_bytes(parcel.manifest_name, parcel.manifest, mode=0o640)

    def put_bytes(self, name: str, data: bytes, mode: int = 0o600) -> Receipt:
        """Write a small file to NAME (0600 unless told) via a temporary name; see `put_small`."""
        ep = self.endpoint
        final = posixpath.join(ep.remote_dir, name)
        part = posixpath.join(ep.remote_dir, f".{name}.part")
        with self.converted("upload", part):
            with self.sftp.open(part, "wb") as fh:
                self.sftp.chmod(part, mode)
                fh.write(data)
            if self.sftp.stat(part).st_size != len(data):
                raise PartnerUnavailable(N_("a short write to {host}; it is sent again").format(
                                             host=ep.host))
            self._rename(part, final)
        return Receipt(
            "sftp",
            ep.url(name),
            {"host": ep.host, "port": ep.port, "user": ep.user, "host_key": self.fingerprint},
        )

    def _copy(self, local: Path, remote: str, offset: int) -> None:
        with (
            open(local, "rb") as src,
            self.sftp.open(remote, "r+b" if offset else "wb", bufsize=0) as dst,
            progress.watched(src, os.fstat(src.fileno()).st_size),
        ):
            if not offset:
                self.sftp.chmod(remote, 0o640)
            # Pipelined writes: without this paramiko waits for each 32 KiB ack (~1 MB/s).
            dst.set_pipelined(True)
            src.seek(offset)
            dst.seek(offset)
            buf = bytearray(_BLOCK)
            view = memoryview(buf)
            while n := src.readinto(buf):
                dst.write(view[:n])
                faults.pause_point("upload-block")  # tests: a kill provably mid-upload
        # Leaving the `with` closes the remote file, which waits for every write's status.

    def _resume_offset(self, part: str, attrs: paramiko.SFTPAttributes, parcel: Parcel) -> int:
        """Where to go on: after the partial upload if its last bytes are ours, else 0."""
        size = attrs.st_size or 0
        if not 0 < size <= parcel.size:
            return 0
        start = max(0, size - _TAIL)
        with self.sftp.open(part, "rb") as remote:
            remote.seek(start)
            theirs = remote.read(size - start)
        with open(parcel.path, "rb") as local:
            local.seek(start)
            ours = local.read(size - start)
        if theirs != ours:
            log.warning("the partial upload %s differs from our file; starting over", part)
            return 0
        log.info("resuming the upload of %s at byte %d", part, size)
        return size

    def _check_final(self, final: str, attrs: paramiko.SFTPAttributes, parcel: Parcel) -> None:
        if attrs.st_size == parcel.size:
            with self.converted("check the SHA-256 of the delivered file", final):
                hashed = self._server_hash(final)
            if hashed is None or hashed == parcel.sha256:
                return
        raise DeliveryRefused(
            N_("{final} on {host} already exists with other bytes; nothing was overwritten").format(
                final=final, host=self.endpoint.host),
            hint=N_("ask the partner what that file is; move it away, then run `tachiai "
                    "transfers retry ID`"),
        )

    def _server_hash(self, path: str) -> str | None:
        """SHA-256 by the server's `check-file` extension (filexfer extensions draft §3.1).

        OpenSSH does not offer it; then None, and the size check stands alone.
        """
        try:
            with self.sftp.open(path, "rb") as fh:
                digest: bytes = fh.check("sha256", 0, 0, 0)
        except (OSError, paramiko.SSHException):
            return None
        return digest.hex()

    def _rename(self, source: str, target: str) -> None:
        try:
            # posix-rename@openssh.com: atomic, replaces a target (SFTP v3 rename refuses one).
            self.sftp.posix_rename(source, target)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.ENOENT, errno.EPERM):
                raise
            self.sftp.rename(source, target)

    def _stat(self, path: str) -> paramiko.SFTPAttributes | None:
        try:
            return self.sftp.stat(path)
        except FileNotFoundError:
            return None

    # -- pickup -----------------------------------------------------------------------------

    def list_entries(self) -> list[tuple[str, int, int, bool]]:
        """(name, size, mtime, plain) of every entry in the remote folder, names sorted.

        `plain` is False for a link, a folder or anything else that is not a plain file: the
        server describes each entry as lstat(2) does, so a link is listed as a link.

        Raises:
            PartnerUnavailable / DeliveryRefused / HostKeyRefused: as for `SftpTransport.send`.
        """
        with self.converted("list the folder", self.endpoint.remote_dir):
            entries = self.sftp.listdir_attr(self.endpoint.remote_dir)
        return sorted(
            (
                e.filename,
                e.st_size or 0,
                e.st_mtime or 0,
                e.st_mode is not None and stat.S_ISREG(e.st_mode),
            )
            for e in entries
            if e.filename not in (".", "..")
        )

    def download(self, name: str, dst: BinaryIO) -> tuple[int, str, tuple[int, int]]:
        """Copy NAME into `dst`; return size, SHA-256 and the (size, mtime) seen after.

        The (size, mtime) after is lstat's, and (-1, -1) when NAME is no longer a plain file (a
        link swapped in while we read): the caller compares it with the listing and drops the
        copy, so what a link pointed at is never kept.

        Raises:
            PartnerUnavailable / DeliveryRefused: as for `SftpTransport.send`.
        """
        path = posixpath.join(self.endpoint.remote_dir, name)
        digest = hashlib.sha256()
        size = 0
        with self.converted("download", path):
            with self.sftp.open(path, "rb") as src:
                src.prefetch(None)
                while chunk := src.read(_BLOCK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
            after = self.sftp.lstat(path)
        if after.st_mode is None or not stat.S_ISREG(after.st_mode):
            return size, digest.hexdigest(), (-1, -1)
        return size, digest.hexdigest(), (after.st_size or 0, after.st_mtime or 0)

    def remove(self, name: str) -> None:
        """Raises: as for `download`."""
        path = posixpath.join(self.endpoint.remote_dir, name)
        with self.converted("remove", path):
            self.sftp.remove(path)

    def move(self, name: str, folder: str) -> str:
        """Rename NAME into `folder` on the server; returns the new path.

        Raises:
            as for `download`.
        """
        source = posixpath.join(self.endpoint.remote_dir, name)
        target = posixpath.join(folder, name)
        with self.converted("move the picked-up file", target):
            self._rename(source, target)
        return target


def _load_key(path: Path) -> paramiko.PKey:
    """Our SSH client key; refused when others may read it (like OpenSSH).

    Raises:
        DeliveryRefused: the key file is missing, too open, or unreadable.
    """
    hint = N_("make the key with `ssh-keygen -t ed25519 -f {path}` and `chmod 600 "
              "{path}`").format(path=path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise DeliveryRefused(
            N_("the SFTP key file {path} cannot be read: {strerror}").format(
                path=path, strerror=exc.strerror), hint=hint
        ) from None
    if info.st_mode & 0o077:
        raise DeliveryRefused(
            N_("the SFTP key file {path} is accessible by other users (mode {s_imode:04o}); it "
               "is refused").format(path=path, s_imode=stat.S_IMODE(info.st_mode)),
            hint=hint,
        )
    try:
        key: Any = paramiko.PKey.from_path(path)
    except (paramiko.SSHException, OSError, ValueError, TypeError) as exc:
        raise DeliveryRefused(
            N_("the SFTP key file {path} is not a usable private key ({name})").format(
                path=path, name=exc.__class__.__name__),
            hint=hint,
        ) from None
    return key
