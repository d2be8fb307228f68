"""SFTP delivery against a real OpenSSH sshd on 127.0.0.1: exactly once, pinned, resumable.

Covers delivery, a repeat after a crash, a changed host key (refused, nothing sent), the server
killed mid-upload and restarted (exactly one final file with the right bytes), permission
denied, an unreachable server, and a client key readable by others.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from gateway.config.routes import SftpEndpoint, host_fingerprint, key_blob
from gateway.errors import PartnerUnavailable
from gateway.transports import DeliveryRefused, HostKeyRefused, Parcel
from gateway.transports.sftp import SftpTransport, put_small
from tests.gateway.conftest import needs_sshd
from tests.gateway.transports.servers import Sshd, free_port, ssh_keygen

pytestmark = [pytest.mark.slow, needs_sshd]


def _endpoint(sshd: Sshd, folder: Path, **changes: object) -> SftpEndpoint:
    return sshd.endpoint(folder, **changes)


def _parcel(path: Path, transfer_id: str = "t-0123456789ab") -> Parcel:
    data = path.read_bytes()
    return Parcel(
        transfer_id=transfer_id,
        path=path,
        name=f"{path.name}.{transfer_id}.zip",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        file_name=path.name,
    )


def _file(tmp_path: Path, size: int, name: str = "sealed.bin") -> Path:
    path = tmp_path / name
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 1 << 20)
            fh.write(os.urandom(n))
            left -= n
    return path


def test_delivery_uploads_under_a_temporary_name_then_renames(sshd: Sshd, tmp_path: Path) -> None:
    inbox = sshd.folder("inbox")
    parcel = _parcel(_file(tmp_path, 3 * (1 << 20) + 7))
    calls: list[str] = []
    receipt = SftpTransport("isa", _endpoint(sshd, inbox)).send(parcel, committing=calls.append)
    assert os.listdir(inbox) == [parcel.name]
    assert (inbox / parcel.name).read_bytes() == parcel.path.read_bytes()
    assert calls == [receipt.location]
    assert receipt.location.startswith(f"sftp://nobody@127.0.0.1:{sshd.port}{inbox}/")
    assert receipt.details["host_key"] == host_fingerprint(key_blob(sshd.host_key_line))
    assert receipt.details["resumed_from"] == 0

    again = SftpTransport("isa", _endpoint(sshd, inbox)).send(parcel)
    assert again.details["already_there"] is True
    assert os.listdir(inbox) == [parcel.name], "a repeat never makes a second copy"


def test_a_file_taken_by_the_partner_after_our_rename_is_not_sent_again(
    sshd: Sshd, tmp_path: Path
) -> None:
    inbox = sshd.folder("inbox")
    parcel = _parcel(_file(tmp_path, 1000))
    SftpTransport("isa", _endpoint(sshd, inbox)).send(parcel)
    (inbox / parcel.name).unlink()  # the partner picked it up before we recorded the delivery
    receipt = SftpTransport("isa", _endpoint(sshd, inbox)).send(parcel, renamed_before=True)
    assert receipt.details["taken_by_partner"] is True
    assert os.listdir(inbox) == []


def test_other_bytes_under_our_final_name_are_never_overwritten(sshd: Sshd, tmp_path: Path) -> None:
    inbox = sshd.folder("inbox")
    parcel = _parcel(_file(tmp_path, 5000))
    (inbox / parcel.name).write_bytes(b"something else")
    with pytest.raises(DeliveryRefused, match="already exists with other bytes"):
        SftpTransport("isa", _endpoint(sshd, inbox)).send(parcel)
    assert (inbox / parcel.name).read_bytes() == b"something else"


def test_a_changed_host_key_is_refused_and_nothing_is_sent(sshd: Sshd, tmp_path: Path) -> None:
    inbox = sshd.folder("inbox")
    other = ssh_keygen(tmp_path / "other_host_key").rsplit(" ", 1)[0]
    parcel = _parcel(_file(tmp_path, 1000))
    with pytest.raises(HostKeyRefused) as err:
        SftpTransport("isa", _endpoint(sshd, inbox, host_keys=(other,))).send(parcel)
    expected = host_fingerprint(key_blob(other))
    offered = host_fingerprint(key_blob(sshd.host_key_line))
    assert err.value.expected == (expected,) and err.value.offered == offered
    text = err.value.diagnostics()
    assert expected in text and offered in text and "known_hosts" in text
    assert os.listdir(inbox) == []


def test_a_host_key_of_another_type_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    inbox = sshd.folder("inbox")
    ecdsa = tmp_path / "ecdsa"
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(ecdsa)], check=True)
    line = " ".join(Path(f"{ecdsa}.pub").read_text().split()[:2])
    with pytest.raises(HostKeyRefused, match="no host key of the pinned type"):
        SftpTransport("isa", _endpoint(sshd, inbox, host_keys=(line,))).send(
            _parcel(_file(tmp_path, 10))
        )


def test_permission_denied_is_reported_not_retried(sshd: Sshd, tmp_path: Path) -> None:
    locked = sshd.folder("locked", owner_uid=0)  # root's folder: nobody may not write there
    with pytest.raises(DeliveryRefused) as err:
        SftpTransport("isa", _endpoint(sshd, locked)).send(_parcel(_file(tmp_path, 10)))
    assert "permission denied" in str(err.value)
    assert "transfers retry" in err.value.hint
    assert os.listdir(locked) == []


def test_a_missing_remote_folder_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    with pytest.raises(DeliveryRefused, match="no such file or folder"):
        SftpTransport("isa", _endpoint(sshd, sshd.root / "nope")).send(_parcel(_file(tmp_path, 10)))


def test_our_key_refused_by_the_server(sshd: Sshd, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    ssh_keygen(stranger)
    with pytest.raises(DeliveryRefused, match="refused our key"):
        SftpTransport("isa", _endpoint(sshd, sshd.folder("inbox"), key_file=stranger)).send(
            _parcel(_file(tmp_path, 10))
        )


def test_a_client_key_readable_by_others_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    key = tmp_path / "open_key"
    ssh_keygen(key)
    os.chmod(key, 0o644)
    with pytest.raises(DeliveryRefused, match="accessible by other users"):
        SftpTransport("isa", _endpoint(sshd, sshd.folder("inbox"), key_file=key)).send(
            _parcel(_file(tmp_path, 10))
        )


def test_an_unreachable_server_is_partner_unavailable(sshd: Sshd, tmp_path: Path) -> None:
    with pytest.raises(PartnerUnavailable) as err:
        SftpTransport("isa", _endpoint(sshd, sshd.folder("inbox"), port=free_port())).send(
            _parcel(_file(tmp_path, 10))
        )
    assert not isinstance(err.value, DeliveryRefused), "a transient fault is retried"


def test_server_killed_mid_upload_then_recovered_with_exactly_one_file(
    sshd: Sshd, tmp_path: Path
) -> None:
    inbox = sshd.folder("inbox")
    parcel = _parcel(_file(tmp_path, 160 * (1 << 20), "big.zip"))
    part = inbox / f".{parcel.name}.part"
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            SftpTransport("isa", _endpoint(sshd, inbox)).send(parcel)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=upload)
    worker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if part.exists() and part.stat().st_size > 24 * (1 << 20):
            break
        time.sleep(0.005)
    sshd.kill()  # the server dies mid-upload, sessions and all
    worker.join(60)
    assert len(errors) == 1 and isinstance(errors[0], PartnerUnavailable), errors
    assert not isinstance(errors[0], DeliveryRefused)
    cut = part.stat().st_size
    assert 0 < cut < parcel.size
    assert not (inbox / parcel.name).exists(), "nothing visible under the final name"

    sshd.start()  # same port, same host key
    receipt = SftpTransport("isa", _endpoint(sshd, inbox)).send(parcel)
    assert 0 < int(receipt.details["resumed_from"]) <= cut
    assert os.listdir(inbox) == [parcel.name], "exactly one file, no partial left"
    with open(inbox / parcel.name, "rb") as fh:
        assert hashlib.file_digest(fh, "sha256").hexdigest() == parcel.sha256


def test_a_damaged_partial_upload_is_started_over(sshd: Sshd, tmp_path: Path) -> None:
    inbox = sshd.folder("inbox")
    parcel = _parcel(_file(tmp_path, 3 * (1 << 20)))
    part = inbox / f".{parcel.name}.part"
    part.write_bytes(b"\0" * (1 << 20))  # not our bytes
    os.chown(part, sshd.uid, -1)
    receipt = SftpTransport("isa", _endpoint(sshd, inbox)).send(parcel)
    assert receipt.details["resumed_from"] == 0
    assert (inbox / parcel.name).read_bytes() == parcel.path.read_bytes()
    assert os.listdir(inbox) == [parcel.name]


def test_a_password_document_goes_up_with_mode_0600(sshd: Sshd) -> None:
    folder = sshd.folder("passwords")
    receipt = put_small(_endpoint(sshd, folder), "x.zip.password", b"secret\n")
    assert (folder / "x.zip.password").read_bytes() == b"secret\n"
    assert (folder / "x.zip.password").stat().st_mode & 0o777 == 0o600
    assert receipt.kind == "sftp" and "secret" not in str(receipt)
