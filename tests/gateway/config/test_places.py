"""gateway.config.places: the few places a witness's hand-over needs, read without the whole
settings, and always the places the whole settings give."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import bootstrap
from gateway.config.places import Places, config_path_from, read_places
from gateway.config.settings import load_settings

_BASE = '[gateway]\nparty = "isa"\n'


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf" / "tachiai.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("extra", [
    "",
    'state_dir = "../var/state"\n',
    'state_dir = "/srv/tachiai/state"\napprovals_dir = "witness-drop"\n',
    'approvals_dir = "/srv/approvals"\n',
    'node_name = "gw a/b"\n[database]\nurl = "postgresql://tachiai@db.example/tachiai"\n',
    '[database]\nurl = "postgresql://tachiai@db.example/tachiai"\n',
])
def test_the_places_are_those_of_the_whole_settings(tmp_path: Path, extra: str) -> None:
    path = _config(tmp_path, _BASE + extra)
    settings = load_settings(path)
    places = read_places(path)
    assert places == settings.places
    assert places == Places(settings.state_dir, settings.approvals_folder,
                            settings.daemon_lock_file)


def test_the_demo_gateways_places(tmp_path: Path) -> None:
    bootstrap.init(tmp_path / "gw", demo=True)
    path = tmp_path / "gw" / "tachiai.toml"
    places = read_places(path)
    assert places == load_settings(path).places
    assert places is not None
    assert places.approvals_folder == (tmp_path / "gw" / "state" / "approvals").resolve()
    assert places.daemon_lock_file == "daemon.lock"


@pytest.mark.parametrize("text", [
    "not toml = = =",
    '[gateway]\nstate_dir = 5\n',
    '[gateway]\nstate_dir = ""\n',
    '[gateway]\napprovals_dir = ""\n',
    '[gateway]\napprovals_dir = ["a"]\n',
    '[gateway]\nnode_name = "a\\u0007b"\n',
    'gateway = "isa"\n',
    '[gateway]\nparty = "isa"\n[database]\nurl = 5\n',
    'database = 1\n',
])
def test_what_is_not_plain_is_left_to_the_whole_settings(tmp_path: Path, text: str) -> None:
    # None: the caller loads the whole settings, which say what is wrong in their words.
    assert read_places(_config(tmp_path, text)) is None


def test_a_name_no_path_can_have_has_no_places(tmp_path: Path) -> None:
    assert read_places(_config(tmp_path, '[gateway]\nstate_dir = "a\\u0000b"\n')) is None
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert read_places(_config(tmp_path, f'[gateway]\nstate_dir = "{tmp_path}/loop/x"\n')) is None


def test_a_missing_or_unreadable_file_has_no_places(tmp_path: Path) -> None:
    assert read_places(tmp_path / "absent.toml") is None
    (tmp_path / "bytes.toml").write_bytes(b"\xff\xfe[gateway]")
    assert read_places(tmp_path / "bytes.toml") is None


def test_the_config_named_in_the_environment_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TACHIAI_CONFIG", raising=False)
    assert config_path_from(None) == tmp_path / "tachiai.toml"
    monkeypatch.setenv("TACHIAI_CONFIG", "elsewhere/t.toml")
    assert config_path_from(None) == tmp_path / "elsewhere" / "t.toml"
    assert config_path_from("given.toml") == tmp_path / "given.toml"
