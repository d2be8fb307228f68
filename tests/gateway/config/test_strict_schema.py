"""Every table of tachiai.toml refuses a key that is not a setting, by one rule, with the
closest setting as a suggestion; mail relay addresses are parsed or refused; STARTTLS is
required off loopback and switching it off there takes a loud opt-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.routes import parse_relay
from gateway.config.settings import Settings, load_settings
from gateway.errors import ConfigError

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH9rGilOgv4wsUiJDjQUzbJfzahVqKx31NxqlXPuBpoO"
HEAD = """
[gateway]
party = "isa"
agreements = ["isa-nhi-status-loss"]
"""
SFTP = f"""
[recipients.nhi-central]
transport = "sftp"
host = "sftp.example.go.jp"
port = 2222
user = "isa"
key_file = "keys/sftp"
known_hosts = "[sftp.example.go.jp]:2222 {KEY}"
remote_dir = "/inbox"
password_channel = {{ kind = "retrieval" }}
"""
MAIL = """
[recipients.nhi-central]
transport = "mail"
relay = "smtp://relay.example.lg.jp:587"
from = "taino@city.example.lg.jp"
to = ["kanri@example.go.jp"]
password_channel = { kind = "retrieval" }
"""
LOCAL = """
[recipients.nhi-central]
inbox = "in"
password_channel = "pw"
"""


def _load(tmp_path: Path, body: str) -> Settings:
    path = tmp_path / "tachiai.toml"
    path.write_text(HEAD + body, encoding="utf-8")
    return load_settings(path)


@pytest.mark.parametrize(
    ("body", "key", "meant"),
    [
        (SFTP + "timeout_secnds = 5\n", "recipients.nhi-central.timeout_secnds", "timeout_seconds"),
        (MAIL + "startls = 'required'\n", "recipients.nhi-central.startls", "starttls"),
        (MAIL + "max_sise = 1000\n", "recipients.nhi-central.max_sise", "max_size"),
        (LOCAL + "inbx = 'x'\n", "recipients.nhi-central.inbx", "inbox"),
        (LOCAL + "atempts = 3\n", "recipients.nhi-central.atempts", "attempts"),
        (LOCAL.replace('"pw"', '{ kind = "folder", pth = "pw" }'),
         "recipients.nhi-central.password_channel.pth", "path"),
        (LOCAL.replace('"pw"', '{ kind = "retrieval", kinds = 1 }'),
         "recipients.nhi-central.password_channel.kinds", "kind"),
        ("[intake]\nsettle_secs = 1\n", "intake.settle_secs", "settle_seconds"),
        ("[sealing]\ncompresion = 'store'\n", "sealing.compresion", "compression"),
        ("[ledger]\ncheckpoint_dir = []\n", "ledger.checkpoint_dir", "checkpoint_dirs"),
        ("[recipient.x]\ninbox = 'a'\n", "recipient", "recipients"),
    ],
)
def test_a_misspelt_key_is_refused_with_the_setting_meant(
    tmp_path: Path, body: str, key: str, meant: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, body)
    assert f"{key} is not a setting" in str(caught.value)
    assert f"did you mean {meant!r}?" in caught.value.hint


def test_the_gateway_table_and_pickups_refuse_typos_the_same_way(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, "registy = 'r.toml'\n")
    assert "gateway.registy is not a setting" in str(caught.value)
    assert "did you mean 'registry'" in caught.value.hint
    pickup = (
        "[pickup.city]\nagreement = 'a'\nflow = 'f'\nhandler = 'h'\nhost = 'h'\nuser = 'u'\n"
        f"key_file = 'k'\nknown_hosts = '{KEY}'\nremote_dir = '/o'\nintervall_seconds = 5\n"
    )
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, pickup)
    assert "pickup.city.intervall_seconds is not a setting" in str(caught.value)
    assert "did you mean 'interval_seconds'" in caught.value.hint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("relay.example.lg.jp", ("relay.example.lg.jp", None, False)),
        ("127.0.0.1:2525", ("127.0.0.1", 2525, False)),
        ("smtp://127.0.0.1:2525", ("127.0.0.1", 2525, False)),
        ("smtps://relay.example.lg.jp:465", ("relay.example.lg.jp", 465, True)),
        ("smtps://relay.example.lg.jp", ("relay.example.lg.jp", None, True)),
        ("[2001:db8::25]:25", ("2001:db8::25", 25, False)),
        ("smtp://[::1]:2525", ("::1", 2525, False)),
    ],
)
def test_relay_forms_are_parsed(text: str, expected: tuple[str, int | None, bool]) -> None:
    assert parse_relay(text, "recipients.x") == expected


@pytest.mark.parametrize(
    "text", ["http://relay:25", "2001:db8::25", "relay:port", "relay:70000", "[relay]:25", "a b"]
)
def test_other_relay_forms_are_refused_with_the_forms_that_work(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_relay(text, "recipients.x")
    assert "relay" in str(caught.value) and "smtp://" in caught.value.hint


def test_a_port_in_the_relay_is_the_port_used(tmp_path: Path) -> None:
    body = MAIL.replace("smtp://relay.example.lg.jp:587", "127.0.0.1:2525")
    mail = _load(tmp_path, body).recipient("nhi-central").mail
    assert mail is not None and (mail.relay, mail.port) == ("127.0.0.1", 2525)
    with pytest.raises(ConfigError, match="disagrees"):
        _load(tmp_path, body + "port = 25\n")


def test_starttls_is_required_off_loopback_and_opportunistic_on_it(tmp_path: Path) -> None:
    mail = _load(tmp_path, MAIL).recipient("nhi-central").mail
    assert mail is not None and mail.starttls == "required" and mail.port == 587
    local = _load(tmp_path, MAIL.replace("relay.example.lg.jp:587", "127.0.0.1:2525"))
    assert local.recipient("nhi-central").mail.starttls == "opportunistic"  # type: ignore[union-attr]


def test_plain_mail_off_loopback_needs_the_unsafe_opt_in(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, MAIL + 'starttls = "off"\n')
    assert "in clear" in str(caught.value) and "unsafe_plaintext_relay = true" in (
        caught.value.hint
    )
    mail = _load(tmp_path, MAIL + 'starttls = "off"\nunsafe_plaintext_relay = true\n')
    assert mail.recipient("nhi-central").mail.starttls == "off"  # type: ignore[union-attr]


def test_mail_settings_from_the_docstrings_are_real(tmp_path: Path) -> None:
    body = MAIL + (
        'ca_file = "relay-ca.pem"\nuser = "isa"\npassword_file = "relay.password"\n'
        "max_size = 5000000\ntimeout_seconds = 20\n"
    )
    mail = _load(tmp_path, body).recipient("nhi-central").mail
    assert mail is not None
    assert mail.ca_file == (tmp_path / "relay-ca.pem").resolve()
    assert mail.user == "isa" and mail.password_file == tmp_path / "relay.password"
    assert mail.max_bytes == 5000000 and mail.timeout_seconds == 20
    default = _load(tmp_path, MAIL).recipient("nhi-central").mail
    assert default is not None and default.max_bytes == 10 * 1024 * 1024


def test_known_hosts_from_a_file_names_the_bracket_form_and_keyscan(tmp_path: Path) -> None:
    body = SFTP.replace(f'"[sftp.example.go.jp]:2222 {KEY}"', '"partner.known_hosts"')
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, body)
    assert "known_hosts file" in str(caught.value) and "missing" in str(caught.value)
    file = tmp_path / "partner.known_hosts"
    assert f"ssh-keyscan -p 2222 sftp.example.go.jp >> {file}" in caught.value.hint
    file.write_text(f"sftp.example.go.jp {KEY}\n")  # written for port 22: not this server
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, body)
    assert "[sftp.example.go.jp]:2222" in str(caught.value)
    assert f"ssh-keyscan -p 2222 sftp.example.go.jp >> {file}" in caught.value.hint
    file.write_text(f"# pinned\n[sftp.example.go.jp]:2222 {KEY}\n")
    endpoint = _load(tmp_path, body).recipient("nhi-central").sftp
    assert endpoint is not None and endpoint.host_keys == (KEY,)
    assert endpoint.known_hosts_file == file


def test_a_missing_known_hosts_names_the_bracket_form(tmp_path: Path) -> None:
    body = SFTP.replace(f'known_hosts = "[sftp.example.go.jp]:2222 {KEY}"\n', "")
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, body)
    assert "[sftp.example.go.jp]:2222" in str(caught.value)
    assert "ssh-keyscan -p 2222 sftp.example.go.jp >> known_hosts" in caught.value.hint
