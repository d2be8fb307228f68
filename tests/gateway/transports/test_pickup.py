"""SFTP pickup from a real sshd: pulled, synced, recorded, and only then removed remotely.

A file still being uploaded (a temporary name) is left alone; a crash after landing but before
the remote removal is finished by the next poll without pulling the file twice; pulled files
are attributed to the source's designated sender and taken in by the ordinary intake.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gateway.config.settings import load_settings
from gateway.outbound import pickup, pipeline
from gateway.runtime import Runtime
from gateway.transports import HostKeyRefused
from tests.conftest import GOOD_ROWS, Demo, csv_bytes
from tests.gateway.conftest import needs_sshd
from tests.gateway.transports.servers import Sshd, ssh_keygen

pytestmark = [pytest.mark.slow, needs_sshd]


def _configure(
    demo: Demo, sshd: Sshd, remote: Path, extra: str = "", host_key: str | None = None
) -> Runtime:
    with open(demo.config, "a", encoding="utf-8") as fh:
        fh.write(f"""
[pickup.city]
agreement = "isa-nhi-status-loss"
flow = "monthly"
handler = "sato"
host = "127.0.0.1"
port = {sshd.port}
user = "{sshd.user}"
key_file = "{sshd.client_key}"
known_hosts = "{host_key or sshd.known_hosts}"
remote_dir = "{remote}"
{extra}""")
    return Runtime.open(load_settings(demo.config))


def _put(remote: Path, name: str, data: bytes, uid: int) -> None:
    (remote / name).write_bytes(data)
    os.chown(remote / name, uid, -1)


def test_pickup_lands_records_then_removes_and_intake_takes_it(demo: Demo, sshd: Sshd) -> None:
    remote = sshd.folder("outbox")
    data = csv_bytes(GOOD_ROWS)
    _put(remote, "status-change.csv", data, sshd.uid)
    _put(remote, ".still-uploading.csv.part", b"partial", sshd.uid)
    rt = _configure(demo, sshd, remote)
    puller = pickup.Pickup(rt)
    (box,) = puller.outboxes()
    assert box.path == rt.settings.state_dir / "pickup" / "city"
    assert oct(box.path.stat().st_mode & 0o777) == "0o700"

    assert puller.poll_once(rt.settings.pickups["city"]) == 1
    assert (box.path / "status-change.csv").read_bytes() == data
    assert sorted(os.listdir(remote)) == [".still-uploading.csv.part"], "removed after landing"
    assert not list((rt.settings.state_dir / "pickup-journal" / "city").iterdir())
    log = demo.cli("audit", "log", "--json", check=True).stdout
    assert "pickup.received" in log and "pickup.removed" in log
    assert pickup.designated_sender(rt.settings, box.path / "status-change.csv") == "sato"
    assert pickup.designated_sender(rt.settings, demo.outbox / "x.csv") is None

    transfer = pipeline.take_in(rt, box, box.path / "status-change.csv")
    assert transfer is not None and transfer.sha256 is not None
    assert not (box.path / "status-change.csv").exists(), "moved into the spool"
    assert puller.poll_once(rt.settings.pickups["city"]) == 0, "nothing is pulled twice"


def test_rename_mode_moves_the_remote_file_into_done(demo: Demo, sshd: Sshd) -> None:
    remote = sshd.folder("outbox")
    done = sshd.folder("outbox/done")
    _put(remote, "a.csv", b"a", sshd.uid)
    rt = _configure(demo, sshd, remote, f'after = "rename"\ndone_dir = "{done}"\n')
    assert pickup.Pickup(rt).poll_once(rt.settings.pickups["city"]) == 1
    assert os.listdir(done) == ["a.csv"] and not (remote / "a.csv").exists()


def test_a_crash_before_the_remote_removal_is_finished_without_a_second_copy(
    demo: Demo, sshd: Sshd
) -> None:
    remote = sshd.folder("outbox")
    _put(remote, "b.csv", b"b-bytes", sshd.uid)
    rt = _configure(demo, sshd, remote)
    puller = pickup.Pickup(rt)
    landing = rt.settings.state_dir / "pickup" / "city"
    journal = rt.settings.state_dir / "pickup-journal" / "city"
    # What a crash after the download and the journal, before the rename, leaves behind:
    (landing / ".b.csv.part").write_bytes(b"b-bytes")
    import hashlib

    digest = hashlib.sha256(b"b-bytes").hexdigest()
    st = (remote / "b.csv").stat()
    (journal / "x.json").write_text(
        json.dumps(
            {"name": "b.csv", "size": st.st_size, "mtime": int(st.st_mtime), "sha256": digest}
        )
    )
    assert puller.poll_once(rt.settings.pickups["city"]) == 0
    assert os.listdir(landing) == ["b.csv"] and os.listdir(remote) == []
    assert not list(journal.iterdir())


def test_a_changed_host_key_stops_the_source_and_is_recorded(
    demo: Demo, sshd: Sshd, tmp_path: Path
) -> None:
    remote = sshd.folder("outbox")
    _put(remote, "c.csv", b"c", sshd.uid)
    other = ssh_keygen(tmp_path / "other").rsplit(" ", 1)[0]
    rt = _configure(demo, sshd, remote, host_key=other)
    puller = pickup.Pickup(rt)
    with pytest.raises(HostKeyRefused):
        puller.poll_once(rt.settings.pickups["city"])
    assert puller.poll_due() == 0  # logged, not raised; the source is now stopped
    assert os.listdir(remote) == ["c.csv"], "nothing was taken"
    assert "pickup.host_key_refused" in demo.cli("audit", "log", check=True).stdout


def test_a_name_with_a_my_number_is_left_on_the_server_and_never_named(
        demo: Demo, sshd: Sshd, caplog: pytest.LogCaptureFixture) -> None:
    remote = sshd.folder("outbox")
    number = "123456789018"  # synthetic: a valid check digit, nobody's number
    _put(remote, f"申請者-{number}.csv", csv_bytes(GOOD_ROWS), sshd.uid)
    rt = _configure(demo, sshd, remote)
    puller = pickup.Pickup(rt)
    assert puller.poll_once(rt.settings.pickups["city"]) == 0
    assert os.listdir(remote) == [f"申請者-{number}.csv"], "left there, never pulled"
    assert "intake.name-my-number" in caplog.text and "name_hmac" in caplog.text
    assert number not in caplog.text and "申請者" not in caplog.text
    assert number not in demo.cli("audit", "log", "--json", check=True).stdout
