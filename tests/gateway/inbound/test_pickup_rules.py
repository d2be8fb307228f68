"""The receiving side's SFTP pickup, without a server: its configuration and the names it takes.

A password account that is the files' own account (on any source) is refused, like a password
folder inside the inbox; a name a server lists that could leave its folder, forge a log line or
break a record is never taken.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.settings import load_settings
from gateway.errors import ConfigError
from gateway.identity.sshkeys import generate_ed25519
from gateway.transports.landing import refusal

BASE = """
[gateway]
party = "nhi-central"
agreements = ["isa-nhi-status-loss"]

[inbound]
inbox = "inbound/inbox"
password_channel = "inbound/passwords"
"""


def _account(tmp_path: Path, port: int, user: str = "nhi", remote_dir: str = "/out") -> str:
    key = tmp_path / "client_key"
    if not key.exists():
        generate_ed25519(key, "client")
    host_key = tmp_path / "host_key"
    if not host_key.exists():
        generate_ed25519(host_key, "host")
    pinned = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
    return (
        f'host = "sftp.example.lg.jp"\nport = {port}\nuser = "{user}"\nkey_file = "{key}"\n'
        f'known_hosts = "{pinned}"\nremote_dir = "{remote_dir}"\n'
    )


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "tachiai.toml"
    path.write_text(BASE + text, encoding="utf-8")
    return load_settings(path)


def test_a_source_with_a_password_account_of_its_own_loads(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        "[inbound.pickup.isa]\n"
        + _account(tmp_path, 22)
        + 'after = "rename"\ndone_dir = "/out/done"\ninterval_seconds = 30\n'
        + "[inbound.pickup.isa.password_channel]\n"
        + _account(tmp_path, 22, user="nhi-pw", remote_dir="/pw"),
    )
    source = settings.inbound.pickups["isa"]  # type: ignore[attr-defined]
    assert (source.after, source.done_dir, source.interval_seconds) == ("rename", "/out/done", 30)
    assert source.sftp.user == "nhi" and source.password_sftp.user == "nhi-pw"
    assert source.password_sftp.remote_dir == "/pw"


@pytest.mark.parametrize("remote_dir", ["/out", "/pw"], ids=["same-folder", "other-folder"])
def test_the_password_account_must_not_be_the_files_account(
    tmp_path: Path, remote_dir: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _load(
            tmp_path,
            "[inbound.pickup.isa]\n"
            + _account(tmp_path, 22)
            + "[inbound.pickup.isa.password_channel]\n"
            + _account(tmp_path, 22, remote_dir=remote_dir),
        )
    text = err.value.diagnostics()
    assert "inbound.pickup.isa" in text and "same SFTP account" in text
    assert "another account or another host" in text


def test_no_source_may_fetch_passwords_from_another_sources_files_account(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"inbound.pickup.b.password_channel .*inbound.pickup.a"):
        _load(
            tmp_path,
            "[inbound.pickup.a]\n"
            + _account(tmp_path, 22, user="a")
            + "[inbound.pickup.b]\n"
            + _account(tmp_path, 22, user="b")
            + "[inbound.pickup.b.password_channel]\n"
            + _account(tmp_path, 22, user="a", remote_dir="/pw"),
        )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('after = "rename"\n', "done_dir must be an absolute folder"),
        ('after = "keep"\n', "after must be one of"),
        ("interval_seconds = 0\n", "interval_seconds must be a positive number"),
        ('remote_dri = "/x"\n', "remote_dri is not a setting"),
    ],
)
def test_bad_source_settings_are_refused_by_name(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, "[inbound.pickup.isa]\n" + _account(tmp_path, 22) + extra)


@pytest.mark.parametrize("name", ['"../x"', '"a/b"', '".hidden"', '"a..b"', '"名前"'])
def test_a_source_name_that_would_not_be_a_plain_folder_name_is_refused(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(ConfigError, match="the name must be letters, digits"):
        _load(tmp_path, f"[inbound.pickup.{name}]\n" + _account(tmp_path, 22))


def test_a_password_account_needs_the_local_password_folder(tmp_path: Path) -> None:
    path = tmp_path / "tachiai.toml"
    path.write_text(
        BASE.replace('password_channel = "inbound/passwords"\n', "")
        + "[inbound.pickup.isa]\n"
        + _account(tmp_path, 22)
        + "[inbound.pickup.isa.password_channel]\n"
        + _account(tmp_path, 2222),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"needs inbound\.password_channel"):
        load_settings(path)


def test_a_pickup_needs_an_inbox(tmp_path: Path) -> None:
    path = tmp_path / "tachiai.toml"
    path.write_text(
        '[gateway]\nparty = "nhi-central"\n[inbound.pickup.isa]\n' + _account(tmp_path, 22),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="has no inbox"):
        load_settings(path)


@pytest.mark.parametrize(
    "name",
    [
        "../x.manifest.json",
        "a/b.zip",
        "..",
        ".",
        "",
        "x\\..\\y.zip",
        "a..b.zip",
        "bell\x07.zip",
        "line\nbreak.zip.manifest.json",
        "esc\x1b[31m.zip",
        "nul\x00.zip",
        "undecodable\udcff.zip",
        "x" * 256,
    ],
)
def test_a_hostile_remote_name_is_refused(name: str) -> None:
    assert refusal(name) is not None


@pytest.mark.parametrize(
    "name",
    [
        "status-change-2026-10.csv.t-0123456789ab.zip",
        "status-change-2026-10.csv.t-0123456789ab.zip.manifest.json",
        "status-change-2026-10.csv.t-0123456789ab.zip.password",
        "資格喪失.csv.t-0123456789ab.age",
    ],
)
def test_the_names_a_provider_delivers_under_are_taken(name: str) -> None:
    assert refusal(name) is None
