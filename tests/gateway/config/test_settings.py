"""Configuration is valid when built: a password channel beside the inbox is refused (PPAP);
[[ledger.sftp]] places are SFTP endpoints, refused by name when wrong."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gateway.config.settings import load_settings
from gateway.errors import ConfigError
from gateway.evidence.checkpoint_sftp import SftpSink
from gateway.evidence.checkpointing import CheckpointSettings, _sinks
from tests.gateway.transports.servers import ssh_keygen

BASE = """
[gateway]
party = "isa"
agreements = ["isa-nhi-status-loss"]
[recipients.nhi-central]
inbox = "{inbox}"
password_channel = "{channel}"
"""


def _write(tmp_path: Path, inbox: str, channel: str, extra: str = "") -> Path:
    path = tmp_path / "tachiai.toml"
    path.write_text(BASE.format(inbox=inbox, channel=channel) + extra, encoding="utf-8")
    return path


@pytest.mark.parametrize(("inbox", "channel"), [
    ("r/inbox", "r/inbox"), ("r/inbox", "r/inbox/pw"), ("r", "r/inbox/../pw/.."),
    ("r/inbox/sub/..", "r/inbox"),
])
def test_password_channel_must_not_be_the_inbox(tmp_path: Path, inbox: str, channel: str) -> None:
    with pytest.raises(ConfigError, match="same place"):
        load_settings(_write(tmp_path, inbox, channel))


def test_separate_channels_load_with_absolute_paths(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, "r/inbox", "r/passwords"))
    recipient = settings.recipient("nhi-central")
    assert recipient.inbox == (tmp_path / "r" / "inbox").resolve()
    assert recipient.password_channel.is_absolute()
    with pytest.raises(ConfigError, match="no delivery"):
        settings.recipient("nobody")


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path / "nope.toml")
    assert "tachiai init" in err.value.diagnostics()


@pytest.mark.parametrize("extra", ['[sealing]\ncompression = "lzma"\n',
                                   "[sealing]\ncompression_level = 0\n",
                                   "[sealing]\ncompression_level = 10\n",
                                   '[sealing]\ncompression_level = "fast"\n',
                                   "[sealing]\ncompression_level = true\n",
                                   "[intake]\nmax_file_size = -1\n",
                                   '[intake]\nsettle_seconds = "soon"\n'])
def test_bad_values_are_refused(tmp_path: Path, extra: str) -> None:
    with pytest.raises(ConfigError):
        load_settings(_write(tmp_path, "r/inbox", "r/passwords", extra))


def test_compression_level_is_read_and_defaults_to_zlibs_balance(tmp_path: Path) -> None:
    assert load_settings(_write(tmp_path, "r/inbox", "r/pw")).compression_level == 6
    chosen = _write(tmp_path, "r/inbox", "r/pw", "[sealing]\ncompression_level = 1\n")
    assert load_settings(chosen).compression_level == 1


def _lease(tmp_path: Path, line: str) -> Path:
    path = _write(tmp_path, "r/inbox", "r/pw")
    path.write_text(path.read_text(encoding="utf-8").replace(
        "[gateway]\n", f"[gateway]\n{line}\n", 1), encoding="utf-8")
    return path


def test_lease_seconds_is_read_and_defaults_to_a_minute(tmp_path: Path) -> None:
    assert load_settings(_write(tmp_path, "r/inbox", "r/pw")).lease_seconds == 60.0
    assert load_settings(_lease(tmp_path, "lease_seconds = 7.5")).lease_seconds == 7.5


@pytest.mark.parametrize("value", ["0", "1", "-5", "86400", '"long"'])
def test_a_lease_too_short_or_too_long_is_refused_by_name(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_lease(tmp_path, f"lease_seconds = {value}"))
    if value != '"long"':
        assert "gateway.lease_seconds must be in [2, 3600]" in str(err.value)


def test_check_processes_is_read_and_zero_keeps_the_check_in_the_worker(tmp_path: Path
                                                                      ) -> None:
    assert load_settings(_write(tmp_path, "r/inbox", "r/pw")).check_processes == 2
    assert load_settings(_lease(tmp_path, "check_processes = 1")).check_processes == 1
    assert load_settings(_lease(tmp_path, "check_processes = 0")).check_processes == 0


@pytest.mark.parametrize("value", ["-1", "65", "1.5", '"two"', "true"])
def test_a_wrong_number_of_check_processes_is_refused_by_name(tmp_path: Path, value: str
                                                              ) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_lease(tmp_path, f"check_processes = {value}"))
    assert "gateway.check_processes" in err.value.diagnostics()


LEDGER_SFTP = """
[[ledger.sftp]]
host = "audit.example.lg.jp"
port = 2222
user = "isa-checkpoints"
key_file = "keys/checkpoints"
known_hosts = "[audit.example.lg.jp]:2222 {key}"
remote_dir = "/checkpoints/isa/"
timeout_seconds = 5
"""


def _host_key(tmp_path: Path) -> str:
    return ssh_keygen(tmp_path / "host_key", "host").rsplit(" ", 1)[0]


def test_ledger_sftp_places_load_as_sftp_endpoints(tmp_path: Path) -> None:
    key = _host_key(tmp_path)
    extra = LEDGER_SFTP.format(key=key) + LEDGER_SFTP.format(key=key).replace(
        "audit.example.lg.jp", "backup.example.lg.jp"
    )
    settings = load_settings(_write(tmp_path, "r/inbox", "r/passwords", extra))
    first, second = settings.ledger_sftp
    assert (first.host, first.port, first.user) == ("audit.example.lg.jp", 2222, "isa-checkpoints")
    assert first.key_file == (tmp_path / "keys" / "checkpoints").resolve()
    assert first.host_keys == (key,) and first.remote_dir == "/checkpoints/isa"
    assert first.timeout_seconds == 5.0 and second.host == "backup.example.lg.jp"
    sinks = _sinks(CheckpointSettings.from_settings(settings))
    remote = [s for s in sinks if isinstance(s, SftpSink)]
    assert [s.name for s in remote] == [
        "sftp://isa-checkpoints@audit.example.lg.jp:2222/checkpoints/isa/",
        "sftp://isa-checkpoints@backup.example.lg.jp:2222/checkpoints/isa/",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("[[ledger.sftp]]", "[ledger.sftp]"), "two brackets"),
        (lambda t: t.replace("known_hosts", "# known_hosts"), r"sftp\[0\].known_hosts is missing"),
        (
            lambda t: t.replace("remote_dir", "remote_folder"),
            r"ledger.sftp\[0\].remote_folder is not",
        ),
        (
            lambda t: t.replace('"/checkpoints/isa/"', '"checkpoints"'),
            "absolute path on the server",
        ),
        (lambda t: t.replace("audit.example.lg.jp]", "other.example.lg.jp]"), "not for audit"),
        (lambda t: t + t, r"ledger.sftp\[1\] names sftp://isa-checkpoints@audit"),
        (lambda t: t.replace("timeout_seconds = 5", "timeout_seconds = 0"), "timeout_seconds"),
    ],
)
def test_bad_ledger_sftp_places_are_refused_by_name(
    tmp_path: Path, change: Any, message: str
) -> None:
    extra = change(LEDGER_SFTP.format(key=_host_key(tmp_path)))
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, "r/inbox", "r/passwords", extra))
    assert re.search(message, err.value.diagnostics()), err.value.diagnostics()
    assert str(err.value).startswith(str(tmp_path / "tachiai.toml"))


def test_the_approvals_folder_defaults_to_the_state_folder_and_may_be_set(
    tmp_path: Path
) -> None:
    default = load_settings(_write(tmp_path, "r/inbox", "r/pw"))
    assert default.approvals_folder == default.state_dir / "approvals"
    chosen = load_settings(_lease(tmp_path, 'approvals_dir = "witnesses/approvals"'))
    assert chosen.approvals_folder == (tmp_path / "witnesses" / "approvals").resolve()
    with pytest.raises(ConfigError, match="approvals_dir must be a path"):
        load_settings(_lease(tmp_path, "approvals_dir = 3"))
