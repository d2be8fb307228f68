"""Configuration is valid when built: a password channel beside the inbox is refused (PPAP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.errors import ConfigError

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
