"""The receiving side fetches deliveries over SFTP from real OpenSSH servers on 127.0.0.1.

isa (the provider) delivers by SFTP: the sealed file and its manifest to one sshd, the ZIP's
password to another (a separate account: another host). nhi-central (the recipient) picks both
up, lands them in its inbox and password folder, and registers a holding; the remote copies are
removed only after that. A changed host key is refused and nothing taken; a crash anywhere
between the download and the remote removal is finished by the next poll with exactly one
holding; hostile names and links on the server are refused and left alone.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config.routes import host_fingerprint, key_blob
from gateway.faults import ENV, PICKUP_POINTS
from gateway.inbound import arrivals
from gateway.inbound.pickup import InboundPickup, landing_root
from gateway.transports import HostKeyRefused
from tests.conftest import wait_for
from tests.gateway.conftest import needs_sshd
from tests.gateway.inbound.test_holdings_pair import ROWS, Pair, csv_bytes, pair
from tests.gateway.test_two_gateways import Gateway
from tests.gateway.transports.servers import Sshd, ssh_keygen

pytestmark = [pytest.mark.slow, needs_sshd]

__all__ = ["pair"]

SECRET_VALUES = ("TEST TARO", "SAMPLE HANAKO", "サンプル町")


@pytest.fixture
def password_sshd() -> Iterator[Sshd]:
    """A second server: the password's separate account (another host, as the config sees it)."""
    server = Sshd()
    server.start()
    yield server
    server.remove()


def _account(server: Sshd, folder: Path, known_hosts: str | None = None) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "user": server.user,
        "key_file": str(server.client_key),
        "known_hosts": known_hosts or server.known_hosts,
        "remote_dir": str(folder),
    }


def _toml(values: dict[str, object]) -> str:
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


def _over_sftp(
    pair: Pair, files: Sshd, passwords: Sshd, extra: str = "", known_hosts: str | None = None
) -> tuple[Path, Path]:
    """isa delivers into the two servers' folders; nhi-central picks up from the same folders."""
    outbox, pw = files.folder("to-nhi-central"), passwords.folder("passwords-nhi-central")
    config = pair.provider.root / "tachiai.toml"
    local = (
        'transport = "local"\ninbox = "../nhi-central/inbound/inbox"\n'
        'password_channel = "../nhi-central/inbound/passwords"\n'
    )
    channel = ", ".join(
        f"{k} = {json.dumps(v)}" for k, v in {"kind": "sftp", **_account(passwords, pw)}.items()
    )
    sftp = (
        'transport = "sftp"\n'
        + _toml(_account(files, outbox))
        + f"password_channel = {{ {channel} }}\n"
    )
    text = config.read_text(encoding="utf-8")
    assert local in text
    config.write_text(text.replace(local, sftp), encoding="utf-8")
    with open(pair.recipient.root / "tachiai.toml", "a", encoding="utf-8") as fh:
        fh.write(
            "\n[inbound.pickup.isa]\n"
            + _toml(_account(files, outbox, known_hosts))
            + f"interval_seconds = 0.2\n{extra}"
            + "\n[inbound.pickup.isa.password_channel]\n"
            + _toml(_account(passwords, pw))
        )
    pair.provider.reopen()
    pair.recipient.reopen()
    return outbox, pw


def _sent(pair: Pair, outbox: Path, pw: Path) -> str:
    """isa sends one witnessed file over SFTP; returns the name it was delivered under."""
    t = pair.send(csv_bytes(ROWS))
    name = Path(t.delivered_path or "").name
    assert sorted(p.name for p in outbox.iterdir() if p.is_file()) == [
        name,
        f"{name}.manifest.json",
    ]
    assert os.listdir(pw) == [f"{name}.password"]
    return name


def _entries(folder: Path) -> dict[str, str | None]:
    """Each entry of a server folder and where it links to (None: not a link)."""
    return {p.name: (os.readlink(p) if p.is_symlink() else None) for p in folder.iterdir()}


def _own_folders_empty(pair: Pair) -> None:
    """Nothing left in the landing folders or journals, the inbox or the password folder."""
    root = landing_root(pair.recipient.rt.settings, "isa")
    for folder in (*root.iterdir(), pair.recipient.inbox, pair.recipient.passwords):
        assert os.listdir(folder) == [], folder


def test_a_delivery_over_sftp_becomes_a_holding_and_only_then_leaves_the_server(
    pair: Pair, sshd: Sshd, password_sshd: Sshd
) -> None:
    outbox, pw = _over_sftp(pair, sshd, password_sshd)
    name = _sent(pair, outbox, pw)
    nhi = Gateway(pair.recipient.root)
    nhi.start()
    try:
        (h,) = nhi.wait_holding("monthly")
        wait_for(lambda: os.listdir(outbox) == [] and os.listdir(pw) == [], 60, "remote removal")
        nhi.wait_ledger()
        assert h["state"] == "received" and h["delivered_name"] == name
        assert h["transfer"] in name and h["handlers"] == ["takahashi"]
        events = [json.loads(line) for line in nhi.ok("audit", "log", "--json").splitlines()]
        kinds = [e["kind"] for e in events]
        picked = [e["data"] for e in events if e["kind"] == "inbound.picked_up"]
        assert sorted(p["what"] for p in picked) == ["delivery", "password"]
        (files,) = [p for p in picked if p["what"] == "delivery"]
        assert [f["name"] for f in files["files"]] == [name, f"{name}.manifest.json"]
        assert files["host_key"] == host_fingerprint(key_blob(sshd.host_key_line))
        (password,) = [p for p in picked if p["what"] == "password"]
        assert [sorted(f) for f in password["files"]] == [["name", "size"]], "no hash of it"
        assert password["files"][0]["name"] == f"{name}.password"
        assert kinds.count("inbound.pickup_removed") == 2
        # Each fetch is recorded before the remote copy is removed, and the holding after it.
        assert kinds.index("inbound.picked_up") < kinds.index("inbound.pickup_removed")
        assert kinds.index("inbound.pickup_removed") < kinds.index("holding.received")
        log = nhi.ok("audit", "log", "--json")
        for value in SECRET_VALUES:
            assert value not in log
        assert nhi.cli("audit", "verify").returncode == 0
        assert nhi.stop() == 0
    finally:
        nhi.stop()
    _own_folders_empty(pair)


def test_rename_mode_moves_the_files_and_still_deletes_the_password(
    pair: Pair, sshd: Sshd, password_sshd: Sshd
) -> None:
    done = sshd.folder("to-nhi-central/done")
    outbox, pw = _over_sftp(pair, sshd, password_sshd, f'after = "rename"\ndone_dir = "{done}"\n')
    name = _sent(pair, outbox, pw)
    puller = InboundPickup(pair.recipient.rt)
    assert puller.poll_due() == 2  # the password, then the delivery
    assert os.listdir(outbox) == ["done"] and sorted(os.listdir(done)) == [
        name,
        f"{name}.manifest.json",
    ]
    assert os.listdir(pw) == [], "a password is never kept on the server"
    assert os.listdir(pair.recipient.passwords) == [f"{name}.password"]
    assert (pair.recipient.passwords / f"{name}.password").stat().st_mode & 0o777 == 0o600
    assert arrivals.poll_inbound(pair.recipient.rt) == 1
    _own_folders_empty(pair)


def test_a_changed_host_key_is_refused_recorded_and_nothing_is_taken(
    pair: Pair, sshd: Sshd, password_sshd: Sshd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    impostor = ssh_keygen(tmp_path / "impostor").rsplit(" ", 1)[0]
    outbox, pw = _over_sftp(
        pair, sshd, password_sshd, known_hosts=f"[127.0.0.1]:{sshd.port} {impostor}"
    )
    name = _sent(pair, outbox, pw)
    rt = pair.recipient.rt
    puller = InboundPickup(rt)
    with pytest.raises(HostKeyRefused):
        puller.poll_once(puller.routes["isa"])
    with caplog.at_level(logging.ERROR):
        assert puller.poll_due() == 1  # the password account's key is the pinned one
        time.sleep(0.3)
        assert puller.poll_due() == 0  # the files account is not polled again until a restart
    assert sorted(os.listdir(outbox)) == [name, f"{name}.manifest.json"], "nothing was taken"
    assert os.listdir(pair.recipient.inbox) == []
    refused = [e for e in rt.ledger.events() if e.kind == "inbound.pickup_host_key_refused"]
    assert len(refused) == 2  # the direct poll, then the daemon's once: then it stops
    assert refused[0].data["offered"] == host_fingerprint(key_blob(sshd.host_key_line))
    assert refused[0].data["expected"] == [host_fingerprint(key_blob(impostor))]
    stopped = [r.getMessage() for r in caplog.records if "stopped" in r.getMessage()]
    assert len(stopped) == 1 and "known_hosts of [inbound.pickup.isa]" in stopped[0]
    assert arrivals.poll_inbound(rt) == 0 and rt.store is not None


def test_an_outage_is_logged_and_recorded_once_and_its_end_too(
    pair: Pair, sshd: Sshd, password_sshd: Sshd, caplog: pytest.LogCaptureFixture
) -> None:
    _over_sftp(pair, sshd, password_sshd)
    rt = pair.recipient.rt
    puller = InboundPickup(rt)
    sshd.stop()
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            assert puller.poll_due() == 0
            time.sleep(0.25)
    errors = [r.getMessage() for r in caplog.records if "inbound pickup isa:" in r.getMessage()]
    assert len(errors) == 1 and "next: check host, port, user" in errors[0]
    sshd.start()
    time.sleep(0.25)
    assert puller.poll_due() == 0
    kinds = [e.kind for e in rt.ledger.events()]
    assert kinds.count("inbound.pickup_unreachable") == 1
    assert kinds.count("inbound.pickup_reachable") == 1


@pytest.mark.parametrize("point", PICKUP_POINTS)
def test_a_crash_before_the_remote_removal_is_finished_by_the_next_poll(
    pair: Pair, sshd: Sshd, password_sshd: Sshd, point: str
) -> None:
    outbox, pw = _over_sftp(pair, sshd, password_sshd)
    name = _sent(pair, outbox, pw)
    nhi = Gateway(pair.recipient.root)
    try:
        daemon = nhi.start(env={ENV: point})
        assert daemon.wait(timeout=60) == -signal.SIGKILL
        nhi.daemon = None
        remote = outbox if "delivery" in point else pw
        assert os.listdir(remote), "killed before the remote copy was removed"
        journal = "journal-files" if "delivery" in point else "journal-passwords"
        assert len(os.listdir(landing_root(pair.recipient.rt.settings, "isa") / journal)) == 1
        nhi.start()
        (h,) = nhi.wait_holding("monthly")
        wait_for(lambda: os.listdir(outbox) == [] and os.listdir(pw) == [], 60, "remote removal")
        nhi.wait_ledger()
        assert h["state"] == "received" and h["delivered_name"] == name
        assert len(nhi.holdings()) == 1
        kinds = nhi.kinds()
        assert "holding.duplicate" not in kinds, "fetched exactly once"
        assert kinds.count("inbound.picked_up") == 2
        assert kinds.count("holding.received") == 1
        assert nhi.stop() == 0
    finally:
        nhi.stop()
    _own_folders_empty(pair)


def test_hostile_names_and_links_on_the_server_are_refused_and_left_alone(
    pair: Pair, sshd: Sshd, password_sshd: Sshd, caplog: pytest.LogCaptureFixture
) -> None:
    outbox, pw = _over_sftp(pair, sshd, password_sshd)
    name = _sent(pair, outbox, pw)  # a good delivery beside them is still taken
    secret = sshd.root / "outside.json"
    secret.write_text('{"not": "yours"}')
    planted = {
        "evil.zip": "data",  # its manifest is a link to a file outside the folder
        "evil.zip.manifest.json": secret,
        "linked.zip": secret,  # the sealed file is a link
        "linked.zip.manifest.json": "{}",
        "bell\x07.zip": "data",  # a control character
        "bell\x07.zip.manifest.json": "{}",
        "a..b.zip": "data",
        "a..b.zip.manifest.json": "{}",
        "only.zip": "data",  # no manifest: not a delivery (yet)
        ".up.zip.manifest.json.part": "{}",  # an upload in progress
    }
    for entry, content in planted.items():
        path = outbox / entry
        if isinstance(content, Path):
            path.symlink_to(content)
        else:
            path.write_text(content)
        os.lchown(path, sshd.uid, -1)
    (outbox / "dir.zip").write_text("data")
    (outbox / "dir.zip.manifest.json").mkdir()
    (pw / "stolen.zip.password").symlink_to(secret)
    before = _entries(outbox)
    rt = pair.recipient.rt
    puller = InboundPickup(rt)
    with caplog.at_level(logging.WARNING):
        assert puller.poll_once(puller.routes["isa/password_channel"]) == 1
        assert puller.poll_once(puller.routes["isa"]) == 1
        assert puller.poll_once(puller.routes["isa"]) == 0  # said once, not at every poll
    assert _entries(outbox) == {k: v for k, v in before.items() if not k.startswith(name)}
    assert os.listdir(pw) == ["stolen.zip.password"] and (pw / "stolen.zip.password").is_symlink()
    assert secret.read_text() == '{"not": "yours"}'
    assert sorted(os.listdir(pair.recipient.inbox)) == [name, f"{name}.manifest.json"]
    assert os.listdir(pair.recipient.passwords) == [f"{name}.password"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    refused = (
        "evil.zip.manifest.json",  # a link
        "linked.zip",  # a link
        "bell\x07.zip.manifest.json",
        "a..b.zip.manifest.json",
        "dir.zip.manifest.json",  # a folder
        "stolen.zip.password",  # a link
    )
    for entry in refused:
        hits = [w for w in warnings if repr(entry) in w]
        assert len(hits) == 1, (entry, warnings)
        assert "left there" in hits[0]
    assert not any("only.zip" in w or ".up.zip" in w for w in warnings)
    assert all("\x07" not in w for w in warnings), "no control character reaches the log"
    assert arrivals.poll_inbound(rt) == 1
