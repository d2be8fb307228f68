"""Recipient and pickup configuration: every transport parses, and PPAP is refused at start.

A password route equal to its file's route (the same folder, the same SFTP account) is a
ConfigError, so the daemon refuses to start; a host key must be pinned and must be this host's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from gateway.config.routes import host_fingerprint, key_blob
from gateway.config.settings import load_settings
from gateway.errors import ConfigError

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH9rGilOgv4wsUiJDjQUzbJfzahVqKx31NxqlXPuBpoO"
HEAD = """
[gateway]
party = "isa"
agreements = ["isa-nhi-status-loss"]
"""


def _load(tmp_path: Path, body: str) -> object:
    path = tmp_path / "tachiai.toml"
    path.write_text(HEAD + body, encoding="utf-8")
    return load_settings(path)


SFTP = f"""
[recipients.nhi-central]
transport = "sftp"
host = "sftp.example.go.jp"
port = 2222
user = "isa"
key_file = "keys/sftp"
known_hosts = "[sftp.example.go.jp]:2222 {KEY} comment"
remote_dir = "/inbox/"
attempts = 3
"""


def test_sftp_recipient_with_a_retrieval_password_route(tmp_path: Path) -> None:
    settings = _load(tmp_path, SFTP + 'password_channel = { kind = "retrieval" }\n')
    r = settings.recipient("nhi-central")  # type: ignore[attr-defined]
    assert r.transport == "sftp" and r.attempts == 3 and r.inbox is None
    assert r.sftp.host_keys == (KEY,) and r.sftp.remote_dir == "/inbox"
    assert r.sftp.key_file == (tmp_path / "keys" / "sftp").resolve()
    assert r.password_route.kind == "retrieval" and r.password_channel is None
    assert r.route() == "sftp://isa@sftp.example.go.jp:2222/inbox/"


def test_the_same_sftp_account_for_the_password_is_refused(tmp_path: Path) -> None:
    same = (
        'password_channel = { kind = "sftp", host = "SFTP.example.go.jp", port = 2222, '
        f'user = "isa", key_file = "k", known_hosts = "{KEY}", remote_dir = "/pw" }}\n'
    )
    with pytest.raises(ConfigError, match="same SFTP account"):
        _load(tmp_path, SFTP + same)
    other = same.replace('user = "isa"', 'user = "isa-pw"')
    settings = _load(tmp_path, SFTP + other)
    route = settings.recipient("nhi-central").password_route  # type: ignore[attr-defined]
    assert route.kind == "sftp" and route.sftp.user == "isa-pw"


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (f"other.example.go.jp {KEY}", "not for sftp.example.go.jp"),
        (f"sftp.example.go.jp {KEY}", "not for"),  # port 2222 needs the [host]:port form
        ("ssh-ed25519 AAAA", "known_hosts: "),
        (f"@revoked * {KEY}", "markers"),
        ("", "known_hosts"),
    ],
)
def test_bad_known_hosts_entries_are_refused(tmp_path: Path, line: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _load(tmp_path, SFTP.replace(f'"[sftp.example.go.jp]:2222 {KEY} comment"', f'"{line}"'))


def test_a_hashed_known_hosts_entry_is_accepted(tmp_path: Path) -> None:
    salt = b"0123456789abcdefghij"
    mac = hmac.new(salt, b"[sftp.example.go.jp]:2222", hashlib.sha1).digest()
    hashed = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(mac).decode()}"
    settings = _load(tmp_path, SFTP.replace("[sftp.example.go.jp]:2222", hashed))
    assert settings.recipient("nhi-central").sftp.host_keys == (KEY,)  # type: ignore


def test_mail_recipient(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        """
[recipients.nhi-central]
transport = "mail"
relay = "smtp.lgwan.example"
from = "taino@city.example.lg.jp"
to = ["kanri@isa.example.go.jp"]
starttls = "required"
ca_file = "relay-ca.pem"
max_size = 5000000
password_channel = "passwords"
""",
    )
    r = settings.recipient("nhi-central")  # type: ignore[attr-defined]
    assert r.mail.port == 25 and r.mail.starttls == "required" and r.mail.max_bytes == 5000000
    assert r.password_channel == (tmp_path / "passwords").resolve()


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ('transport = "ftp"\n', "not supported"),
        ('transport = "mail"\nrelay = "r"\nfrom = "a@b"\nto = "nobody"\n', "mail addresses"),
        (
            'transport = "mail"\nrelay = "r"\nfrom = "a@b"\nto = "c@d"\nstarttls = "never"\n',
            "starttls",
        ),
        ('inbox = "in"\npassword_channel = { kind = "carrier-pigeon" }\n', "kind"),
        ('inbox = "in"\npassword_channel = { kind = "folder", path = "in/pw" }\n', "same place"),
        ('inbox = "in"\nattempts = 0\n', "attempts"),
    ],
)
def test_bad_recipients_are_refused(tmp_path: Path, body: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _load(tmp_path, "[recipients.nhi-central]\n" + body)


def test_pickup_sources(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        f"""
[pickup.city]
agreement = "isa-nhi-status-loss"
flow = "monthly"
handler = "sato"
host = "files.example.lg.jp"
user = "tachiai"
key_file = "keys/pickup"
known_hosts = "files.example.lg.jp {KEY}"
remote_dir = "/outbox"
after = "rename"
done_dir = "/outbox/done"
interval_seconds = 30
""",
    )
    (source,) = settings.pickups.values()  # type: ignore[attr-defined]
    assert (source.name, source.handler, source.after, source.done_dir) == (
        "city",
        "sato",
        "rename",
        "/outbox/done",
    )
    assert source.sftp.port == 22 and source.interval_seconds == 30.0


def test_pickup_needs_a_designated_sender(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="handler"):
        _load(
            tmp_path,
            f"""
[pickup.city]
agreement = "isa-nhi-status-loss"
flow = "monthly"
host = "h"
user = "u"
key_file = "k"
known_hosts = "h {KEY}"
remote_dir = "/o"
""",
        )


def test_fingerprint_is_what_ssh_keygen_prints() -> None:
    digest = hashlib.sha256(key_blob(KEY)).digest()
    assert host_fingerprint(key_blob(KEY)) == "SHA256:" + base64.b64encode(digest).decode().rstrip(
        "="
    )


@pytest.mark.parametrize("name", ["a.csv", "あ" * 200, "x" * 300, "名簿" + "y" * 250])
def test_delivered_names_fit_name_max_with_every_companion(name: str) -> None:
    from gateway.outbound.delivery import delivered_name

    out = delivered_name("t-0123456789ab", name, ".zip")
    assert out.endswith(".t-0123456789ab.zip")
    for form in (out, f".{out}.part", f"{out}.password"):
        assert len(form.encode("utf-8")) <= 255
    if len(name.encode()) < 200:
        assert out == f"{name}.t-0123456789ab.zip"
