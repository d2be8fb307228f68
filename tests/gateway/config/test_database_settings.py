"""[database] in tachiai.toml: a PostgreSQL URL for the state and the ledger, never with a
password in it; the password file resolved beside the configuration; [gateway] node_name and
the per-node daemon lock."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gateway.config.settings import load_settings
from gateway.errors import ConfigError


def _config(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "tachiai.toml"
    path.write_text(f'[gateway]\nparty = "isa"\n{extra}', encoding="utf-8")
    return path


def test_without_database_the_state_stays_in_sqlite_with_one_lock(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, ""))
    assert settings.database_url == "" and settings.daemon_lock_file == "daemon.lock"


def test_a_postgres_url_and_password_file_load(tmp_path: Path) -> None:
    settings = load_settings(
        _config(
            tmp_path,
            'node_name = "gw a"\n[database]\nurl = "postgresql://tachiai@db.example/tachiai"\n'
            'password_file = "secrets/db-password"\n',
        )
    )
    assert settings.database_url == "postgresql://tachiai@db.example/tachiai"
    assert settings.database_password_file == (tmp_path / "secrets" / "db-password").resolve()
    assert settings.node_name == "gw a"
    assert settings.daemon_lock_file == "daemon.gw_a.lock"  # one daemon per node


def test_the_default_node_lock_is_the_host_name(tmp_path: Path) -> None:
    settings = load_settings(
        _config(tmp_path, '[database]\nurl = "postgresql://tachiai@db/tachiai"\n')
    )
    assert socket.gethostname().split(".")[0] in settings.daemon_lock_file


def test_a_password_in_the_url_is_refused_without_repeating_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="carries a password") as caught:
        load_settings(
            _config(tmp_path, '[database]\nurl = "postgresql://tachiai:s3cret@db/tachiai"\n')
        )
    assert "s3cret" not in str(caught.value) + caught.value.hint


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('url = "sqlite:///x.db"', "not a PostgreSQL URL"),
        ('password_file = "p"', "password_file is set but database.url is not"),
        ('uri = "postgresql://db/x"', r"database\.uri is not a setting"),
    ],
)
def test_other_mistakes_are_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(_config(tmp_path, f"[database]\n{body}\n"))
