"""The gateway's settings (tachiai.toml), valid when built and frozen after.

Every limit the daemon applies lives here, in one object. Paths in the file are relative to the
file's own folder. A recipient whose password channel is the same place as its delivery channel
is refused: the password must never travel with the file it opens (the PPAP problem).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError

DEFAULT_CONFIG = "tachiai.toml"
COMPRESSIONS = ("deflate", "store")


@dataclass(frozen=True)
class Recipient:
    """Where a receiving party's files and passwords go (configured per party)."""

    party: str
    transport: str
    inbox: Path
    password_channel: Path


@dataclass(frozen=True)
class Settings:
    """Everything the daemon and the commands need to know, resolved to absolute paths."""

    config_path: Path
    party: str
    state_dir: Path
    outbox_dir: Path
    registry_path: Path
    agreements: tuple[str, ...]
    recipients: Mapping[str, Recipient]
    max_file_size: int = 1 << 30
    settle_seconds: float = 2.0
    scan_interval_seconds: float = 5.0
    poll_seconds: float = 0.25
    compression: str = "deflate"

    @property
    def database_path(self) -> Path:
        return self.state_dir / "tachiai.db"

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "ledger.db"

    @property
    def spool_dir(self) -> Path:
        return self.state_dir / "spool"

    def outbox(self, agreement_id: str, flow_id: str) -> Path:
        return self.outbox_dir / agreement_id / flow_id

    def recipient(self, party: str) -> Recipient:
        """Raises: ConfigError when no delivery is configured for the party."""
        try:
            return self.recipients[party]
        except KeyError:
            raise ConfigError(
                f"no delivery is configured for recipient party {party!r}",
                hint=f"add a [recipients.{party}] table to {self.config_path}",
            ) from None


def config_path_from(arg: str | None) -> Path:
    """The config file named on the command line, in $TACHIAI_CONFIG, or ./tachiai.toml."""
    return Path(arg or os.environ.get("TACHIAI_CONFIG") or DEFAULT_CONFIG).absolute()


def load_settings(path: Path) -> Settings:
    """Read and validate a config file.

    Raises:
        ConfigError: when the file is missing, not TOML, or names something invalid.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"no configuration at {path}",
            hint="run `tachiai init DIR --demo` to create one, or pass --config PATH",
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return _settings_from(raw, path)


def _settings_from(raw: Mapping[str, Any], path: Path) -> Settings:
    base = path.parent

    def section(name: str) -> Mapping[str, Any]:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        return value

    def resolve(value: Any, key: str) -> Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: {key} must be a path", hint=f'set {key} = "…"')
        return (base / value).resolve()

    gw = section("gateway")
    intake = section("intake")
    sealing = section("sealing")
    party = gw.get("party")
    if not isinstance(party, str) or not party:
        raise ConfigError(
            f"{path}: gateway.party is missing",
            hint='name the party this gateway acts for, e.g. party = "isa"',
        )
    agreements = gw.get("agreements", [])
    if not isinstance(agreements, list) or not all(isinstance(a, str) for a in agreements):
        raise ConfigError(f"{path}: gateway.agreements must be a list of ids or paths")
    compression = sealing.get("compression", "deflate")
    if compression not in COMPRESSIONS:
        raise ConfigError(f"{path}: sealing.compression must be one of {', '.join(COMPRESSIONS)}")
    recipients = {
        pid: _recipient(pid, body, resolve, path) for pid, body in section("recipients").items()
    }
    try:
        settings = Settings(
            config_path=path,
            party=party,
            state_dir=resolve(gw.get("state_dir", "state"), "gateway.state_dir"),
            outbox_dir=resolve(gw.get("outbox_dir", "outbox"), "gateway.outbox_dir"),
            registry_path=resolve(gw.get("registry", "registry.toml"), "gateway.registry"),
            agreements=tuple(agreements),
            recipients=recipients,
            max_file_size=int(intake.get("max_file_size", 1 << 30)),
            settle_seconds=float(intake.get("settle_seconds", 2.0)),
            scan_interval_seconds=float(intake.get("scan_interval_seconds", 5.0)),
            poll_seconds=float(intake.get("poll_seconds", 0.25)),
            compression=str(compression),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: a number in [intake] is not a number ({exc})") from exc
    if settings.max_file_size <= 0 or settings.settle_seconds < 0:
        raise ConfigError(f"{path}: intake limits must be positive")
    return settings


def _recipient(pid: str, body: Any, resolve: Any, path: Path) -> Recipient:
    if not isinstance(body, dict):
        raise ConfigError(f"{path}: [recipients.{pid}] must be a table")
    transport = body.get("transport", "local")
    if transport != "local":
        raise ConfigError(
            f"{path}: recipients.{pid}.transport {transport!r} is not supported",
            hint='use transport = "local"',
        )
    inbox = resolve(body.get("inbox"), f"recipients.{pid}.inbox")
    channel = resolve(body.get("password_channel"), f"recipients.{pid}.password_channel")
    if inbox == channel or inbox in channel.parents or channel in inbox.parents:
        # PPAP: a password beside its ZIP protects nothing.
        raise ConfigError(
            f"{path}: recipients.{pid}: the password channel and the inbox are the same place",
            hint="give password_channel a folder outside the inbox (a separate route)",
        )
    return Recipient(party=pid, transport=str(transport), inbox=inbox, password_channel=channel)
