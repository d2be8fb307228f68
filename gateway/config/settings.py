"""The gateway's settings (tachiai.toml), valid when built and frozen after.

Every limit the daemon applies lives here, in one object. Paths in the file are relative to the
file's own folder. A recipient whose password channel is the same place as its delivery channel
is refused: the password must never travel with the file it opens (the PPAP problem).
Over 400 lines for one reason: every table of tachiai.toml and its limits are validated in one
place (routes and sources have modules of their own).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.errors import LedgerStorageError
from gateway.config import places
from gateway.config.notify import NotifySettings, parse_notify
from gateway.config.places import DEFAULT_CONFIG, Places, config_path_from
from gateway.config.receipts import RECEIPT_KEYS, parse_receipts
from gateway.config.schema import TOP_LEVEL, only
from gateway.errors import ConfigError
from gateway.i18n import N_

if TYPE_CHECKING:
    from audit.notes import NoteVerifier
    from gateway.config.routes import MailRoute, PasswordRoute, SftpEndpoint
    from gateway.config.sources import InboundPickupSource, PickupSource

__all__ = [
    "DEFAULT_CONFIG",
    "Inbound",
    "Recipient",
    "Settings",
    "config_path_from",
    "load_settings",
]

COMPRESSIONS = ("deflate", "store")
TRANSPORTS = ("local", "sftp", "mail")
# The settings of each table; every table refuses any other key (gateway.config.schema).
GATEWAY_KEYS = frozenset(
    {
        "party",
        "state_dir",
        "outbox_dir",
        "registry",
        "agreements",
        "busy_timeout_seconds",
        "node_name",
        "workers",
        "check_processes",
        "error_attempts",
        "lease_seconds",
        "partitions",
        "approvals_dir",
    }
)
#: [database]: the state database and the ledger on a PostgreSQL server (several nodes).
DATABASE_KEYS = frozenset({"url", "password_file"})
INTAKE_KEYS = frozenset(
    {"max_file_size", "settle_seconds", "scan_interval_seconds", "poll_seconds"}
)
SEALING_KEYS = frozenset({"compression", "compression_level"})
LEDGER_KEYS = frozenset(
    {"checkpoint_key", "checkpoint_dirs", "syslog", "checkpoint_interval_seconds", "sftp"}
)
RECIPIENT_KEYS = (
    frozenset({"transport", "password_channel", "attempts", "manifest"}) | RECEIPT_KEYS
)


@dataclass(frozen=True)
class Recipient:
    """How a receiving party's files and passwords reach it (configured per party).

    `transport` is "local" (a folder, `inbox`), "sftp" (`sftp`) or "mail" (`mail`); the
    password of a ZIP takes `password_route`, which is never the file's own route.
    """

    party: str
    transport: str
    inbox: Path | None = None
    sftp: SftpEndpoint | None = None
    mail: MailRoute | None = None
    password_route: PasswordRoute | None = None
    attempts: int = 5  # delivery attempts before the transfer is `failed`
    # NAME.manifest.json beside each file (gateway.exchange.manifest): a receiving tachiai needs
    # it to verify the witnessed approval; false for a partner whose inbox reader expects one file.
    manifest: bool = True
    # Delivery receipts (受領確認, gateway.exchange.receipts): the folder the recipient's signed
    # receipts arrive in, the recipient's public key that must have signed them (its
    # `tachiai audit public-key`), and how long a delivery may wait for one before it is listed.
    receipts_dir: Path | None = None
    receipt_key: NoteVerifier | None = None
    receipt_within_hours: float = 24.0

    @property
    def password_channel(self) -> Path | None:
        """The password folder when the route is a folder (the demo's form)."""
        route = self.password_route
        return route.folder if route is not None and route.kind == "folder" else None

    def route(self) -> str:
        """The delivery route for people and the ledger (no secret in it)."""
        if self.transport == "sftp" and self.sftp is not None:
            return self.sftp.url()
        if self.transport == "mail" and self.mail is not None:
            return N_("mail via {relay}:{port} to {to}").format(
                       relay=self.mail.relay, port=self.mail.port, to=', '.join(self.mail.to))
        return N_("folder {inbox}").format(inbox=self.inbox)

    def require_password_route(self) -> PasswordRoute:
        """Raises: ConfigError when a ZIP must go to this party but no password route is set."""
        if self.password_route is None:
            raise ConfigError(
                N_("recipient {party} gets password-protected files but has no "
                   "password_channel").format(party=self.party),
                hint=N_('add password_channel = {{ kind = "retrieval" }} (or a folder or another '
                        "SFTP account) to [recipients.{party}]").format(party=self.party),
            )
        return self.password_route


@dataclass(frozen=True)
class Inbound:
    """What this gateway receives (受信, `[inbound]`); without `inbox` it receives nothing.

    Files and their manifests arrive in `inbox`; a ZIP's password in `password_channel` (a
    folder of its own, never the inbox); `age_identity` opens files of the age profile.
    Opened data goes only into `handlers_folder/HANDLER/` (0700). `notify_command` gets a JSON
    summary (no personal data) of each reminder; `remind_days` are days before a deadline.
    `pickups` fetch deliveries from providers' SFTP servers into `inbox`.
    """

    inbox: Path | None = None
    password_channel: Path | None = None
    age_identity: Path | None = None
    handlers_folder: Path | None = None
    notify_command: tuple[str, ...] = ()
    remind_days: tuple[int, ...] = (14, 3, 0)
    pickups: Mapping[str, InboundPickupSource] = field(default_factory=dict)
    # Where signed delivery receipts (受領確認) go back to providers: beside the inbox unless set.
    receipts_dir: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.inbox is not None


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
    compression_level: int = 6  # zlib 1 (fastest) … 9 (smallest); see [sealing] in bootstrap
    pickups: Mapping[str, PickupSource] = field(default_factory=dict)
    inbound: Inbound = field(default_factory=Inbound)
    # [ledger]: signed checkpoints (gateway.evidence.checkpointing); None/() mean the state-dir
    # defaults.
    ledger_checkpoint_key: Path | None = None
    ledger_checkpoint_dirs: tuple[Path, ...] = ()
    ledger_syslog: str = ""
    ledger_checkpoint_interval_seconds: float = 1.0
    ledger_sftp: tuple[SftpEndpoint, ...] = ()  # [[ledger.sftp]]: remote checkpoint folders
    # [gateway] busy_timeout_seconds: how long a command waits for another process's write lock
    # on the state database before it stops with "locked" (exit 74).
    busy_timeout_seconds: float = 60.0
    # [database] url: "" keeps the state and the ledger in SQLite files under state_dir (one
    # node); a postgresql:// URL (never with a password in it) puts both on that server.
    database_url: str = ""
    database_password_file: Path | None = None  # [database] password_file (else PGPASSWORD)
    # [gateway] node_name: this daemon in `tachiai nodes`; "" is HOST:PID.
    node_name: str = ""
    # [gateway] workers: threads in each CPU lane (intake and checks; sealing) of the daemon
    # (gateway.workers); each partner's deliveries have a lane of their own besides.
    workers: int = 2
    # [gateway] check_processes: processes that run the content check of files beside the
    # workers (gateway.outbound.check_pool); 0 checks in the worker's own thread. The intake
    # lane has one thread more than this (gateway.workers.intake_threads), so no thread waits
    # for another's check of a large file, nor a process for a thread's take-in.
    check_processes: int = 2
    # [gateway] error_attempts: tries of a step that fails with an internal error before its
    # transfer is `failed` (rule internal.error).
    error_attempts: int = 5
    # [gateway] lease_seconds: how long a claim on a transfer or holding lasts without a
    # heartbeat (renewed every quarter of it while a step runs); a dead node's claims are taken
    # over by another node once it has passed.
    lease_seconds: float = 60.0
    notify: NotifySettings = field(default_factory=NotifySettings)  # [notify]: config/notify.py
    # [gateway] partitions: the members of a party group whose data this gateway also holds,
    # each in its own partition (区画, seed 004): a delivery to one of them is received here,
    # its holding belongs to that member, and only that member's receiving handlers open or
    # certify it.
    partitions: tuple[str, ...] = ()
    # [gateway] approvals_dir: where the daemon publishes each statement awaiting approval and
    # takes the witnesses' `ssh-keygen -Y sign` signatures (gateway.outbound.approval_folder);
    # None is STATE_DIR/approvals.
    approvals_dir: Path | None = None

    def holder_of(self, recipient: str | None) -> str:
        """The party a delivery to `recipient` is held for here: that member when it is one of
        our partitions, else this gateway's own party (so a stranger is still not ours)."""
        return recipient if recipient and recipient in self.partitions else self.party

    @property
    def database_path(self) -> Path:
        return self.state_dir / "tachiai.db"

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "ledger.db"

    @property
    def daemon_lock_file(self) -> str:
        """The daemon lock's file in state_dir (gateway.config.places)."""
        return places.daemon_lock_file(self.database_url, self.node_name)

    @property
    def approvals_folder(self) -> Path:
        return places.approvals_folder(self.state_dir, self.approvals_dir)

    @property
    def places(self) -> Places:
        """Where the state, the approvals folder and the daemon lock are."""
        return Places(self.state_dir, self.approvals_folder, self.daemon_lock_file)

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
                N_("no delivery is configured for recipient party {party}").format(
                    party=repr(party)),
                hint=N_("add a [recipients.{party}] table to {config_path}").format(
                         party=party, config_path=self.config_path),
            ) from None


def load_settings(path: Path) -> Settings:
    """Read and validate a config file.

    Raises:
        ConfigError: when the file is missing, not TOML, or names something invalid.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            N_("no configuration at {path}").format(path=path),
            hint=N_("run `tachiai init DIR --demo` to create one, or pass --config PATH"),
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(N_("cannot read {path}: {exc}").format(path=path, exc=exc)) from exc
    return _settings_from(raw, path)


def _settings_from(raw: Mapping[str, Any], path: Path) -> Settings:
    base = path.parent
    only(raw, TOP_LEVEL, str(path))
    tables = {
        "gateway": GATEWAY_KEYS,
        "intake": INTAKE_KEYS,
        "sealing": SEALING_KEYS,
        "database": DATABASE_KEYS,
    }

    def section(name: str) -> Mapping[str, Any]:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(N_("{path}: [{name}] must be a table").format(path=path, name=name))
        if name in tables:
            only(value, tables[name], f"{path}: {name}")
        return value

    def resolve(value: Any, key: str) -> Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(N_("{path}: {key} must be a path").format(path=path, key=key),
                              hint=N_('set {key} = "…"').format(key=key))
        return places.resolved(base, value)

    gw = section("gateway")
    intake = section("intake")
    sealing = section("sealing")
    party = gw.get("party")
    if not isinstance(party, str) or not party:
        raise ConfigError(
            N_("{path}: gateway.party is missing").format(path=path),
            hint=N_('name the party this gateway acts for, e.g. party = "isa"'),
        )
    agreements = gw.get("agreements", [])
    if not isinstance(agreements, list) or not all(isinstance(a, str) for a in agreements):
        raise ConfigError(N_("{path}: gateway.agreements must be a list of ids or paths").format(
                              path=path))
    compression = sealing.get("compression", "deflate")
    if compression not in COMPRESSIONS:
        raise ConfigError(N_("{path}: sealing.compression must be one of {choices}").format(
                              path=path, choices=', '.join(COMPRESSIONS)))
    level = sealing.get("compression_level", 6)
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 9:
        raise ConfigError(
            N_("{path}: sealing.compression_level must be a whole number from 1 to 9").format(
                path=path),
            hint=N_("1 seals fastest, 9 makes the smallest files; 6 is zlib's usual balance"),
        )
    recipients = {
        pid: _recipient(pid, body, resolve, path)
        for pid, body in section("recipients").items()
    }
    pickups = _pickups(section("pickup"), resolve, path)
    inbound = _inbound(section("inbound"), resolve, path)
    rest = {"notify": parse_notify(section("notify"), resolve, path),
            **_ledger_settings(section("ledger"), resolve, path)}
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
            compression_level=level,
            busy_timeout_seconds=float(gw.get("busy_timeout_seconds", 60.0)),
            node_name=_node_name(gw.get("node_name", ""), path),
            **_database(section("database"), resolve, path),
            workers=_whole(gw.get("workers", 2), "gateway.workers", path),
            check_processes=_whole(gw.get("check_processes", 2), "gateway.check_processes",
                                   path),
            error_attempts=_whole(gw.get("error_attempts", 5), "gateway.error_attempts", path),
            lease_seconds=float(gw.get("lease_seconds", 60.0)),
            partitions=_partitions(gw.get("partitions", []), party, path),
            approvals_dir=(resolve(gw["approvals_dir"], "gateway.approvals_dir")
                           if "approvals_dir" in gw else None),
            pickups=pickups,
            inbound=inbound,
            **rest,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(N_("{path}: a number in [intake] is not a number ({exc})").format(
                              path=path, exc=exc)) from exc
    if settings.max_file_size <= 0 or settings.settle_seconds < 0:
        raise ConfigError(N_("{path}: intake limits must be positive").format(path=path))
    if not 0 < settings.busy_timeout_seconds <= 3600:
        raise ConfigError(N_("{path}: gateway.busy_timeout_seconds must be in (0, 3600]").format(
                              path=path))
    if not 1 <= settings.workers <= 64 or not 1 <= settings.error_attempts <= 100:
        raise ConfigError(N_("{path}: gateway.workers must be in [1, 64] and "
                             "gateway.error_attempts in [1, 100]").format(path=path))
    if not 0 <= settings.check_processes <= 64:
        raise ConfigError(N_("{path}: gateway.check_processes must be in [0, 64]").format(
                              path=path),
                          hint=N_("the default, 2, matches the 2 threads of the intake lane "
                                  "(gateway.workers); 0 checks each file in its worker's own "
                                  "thread"))
    if not 2 <= settings.lease_seconds <= 3600:
        raise ConfigError(N_("{path}: gateway.lease_seconds must be in [2, 3600]").format(
                              path=path),
                          hint=N_("the default, 60, suits most nodes; a dead node's work waits "
                                  "this long before another node takes it over"))
    if ":" in settings.node_name:
        raise ConfigError(N_("{path}: gateway.node_name must not contain ':' (claims are owned "
                             "as NODE:PID:WORKER)").format(path=path),
                          hint=N_('a short name such as "gw1"'))
    return settings


def _pickups(tables: Mapping[str, Any], resolve: Any, path: Path) -> dict[str, PickupSource]:
    """The [pickup.NAME] tables (their module is loaded only when there is one: most commands
    of most gateways never need it)."""
    if not tables:
        return {}
    from gateway.config.sources import parse_pickup

    return {name: parse_pickup(name, body, resolve, path) for name, body in tables.items()}


def _partitions(value: Any, party: str, path: Path) -> tuple[str, ...]:
    """[gateway] partitions: distinct party ids, none of them the gateway's own party."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) \
            or len(set(value)) != len(value) or party in value:
        raise ConfigError(
            N_("{path}: gateway.partitions must be a list of distinct member parties other than "
               "gateway.party").format(path=path),
            hint=N_('e.g. partitions = ["municipalities-131016", "municipalities-131041"]'),
        )
    return tuple(value)


def _node_name(value: Any, path: Path) -> str:
    if not isinstance(value, str) or len(value) > 200 or not value.isprintable():
        raise ConfigError(
            N_("{path}: gateway.node_name must be a short printable name").format(path=path),
            hint=N_('e.g. node_name = "gw-a"; leave it out to use HOST:PID'),
        )
    return value


def _database(db: Mapping[str, Any], resolve: Any, path: Path) -> dict[str, Any]:
    """The [database] table: a PostgreSQL URL without a password, and where the password is.

    Raises:
        ConfigError: a URL that is not PostgreSQL's or carries a password; a password file
            without a URL.
    """
    url = db.get("url", "")
    if not isinstance(url, str):
        raise ConfigError(N_("{path}: database.url must be a string").format(path=path))
    if url:
        # Imported here: it loads the database layer, which a SQLite gateway's short commands
        # never need (tests/gateway/cli/test_startup.py).
        from audit.database import postgres_url

        try:
            postgres_url(url)
        except LedgerStorageError as exc:
            raise ConfigError(
                f"{path}: database.url: {exc}",
                hint=N_('e.g. url = "postgresql://tachiai@db.example.lg.jp/tachiai" with '
                        'password_file = "/etc/tachiai/db-password"; see docs/operations.md'),
            ) from None
    password_file = db.get("password_file")
    if password_file is not None and not url:
        raise ConfigError(
            N_("{path}: database.password_file is set but database.url is not").format(path=path),
            hint=N_("set database.url, or remove the [database] table to keep SQLite"),
        )
    return {
        "database_url": url,
        "database_password_file": (
            resolve(password_file, "database.password_file") if password_file else None
        ),
    }


def _whole(value: Any, key: str, path: Path) -> int:
    """Raises: ConfigError when `value` is not a whole number."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(N_("{path}: {key} must be a whole number").format(path=path, key=key),
                          hint=N_("e.g. {name} = 2").format(name=key.split('.')[1]))
    return value


def _ledger_settings(ledger: Mapping[str, Any], resolve: Any, path: Path) -> dict[str, Any]:
    """The [ledger] table: where the checkpoint key lives and where checkpoints are published."""
    only(ledger, LEDGER_KEYS, f"{path}: ledger")
    dirs = ledger.get("checkpoint_dirs", [])
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        raise ConfigError(
            N_("{path}: ledger.checkpoint_dirs must be a list of folders").format(path=path),
            hint=N_('e.g. checkpoint_dirs = ["/mnt/audit/checkpoints"]'),
        )
    syslog = ledger.get("syslog", "")
    if not isinstance(syslog, str):
        raise ConfigError(
            N_("{path}: ledger.syslog must be a string").format(path=path),
            hint=N_('"" (off), "/dev/log", "udp://host:514" or "tcp://host:514"'),
        )
    interval = float(ledger.get("checkpoint_interval_seconds", 1.0))
    if not 0 < interval <= 1.0:
        # Issue 4: a checkpoint at least every second while events arrive.
        raise ConfigError(N_("{path}: ledger.checkpoint_interval_seconds must be in (0, 1]").format(
                              path=path))
    key = ledger.get("checkpoint_key")
    return {
        "ledger_checkpoint_key": resolve(key, "ledger.checkpoint_key") if key else None,
        "ledger_checkpoint_dirs": tuple(resolve(d, "ledger.checkpoint_dirs") for d in dirs),
        "ledger_syslog": syslog,
        "ledger_checkpoint_interval_seconds": interval,
        "ledger_sftp": _ledger_sftp(ledger.get("sftp", []), resolve, path),
    }


def _ledger_sftp(raw: Any, resolve: Any, path: Path) -> tuple[SftpEndpoint, ...]:
    """`[[ledger.sftp]]` tables: remote folders for checkpoints, each an SFTP endpoint written
    exactly like a recipient's or a pickup's (host, port, user, key_file, known_hosts,
    remote_dir, timeout_seconds).

    Raises:
        ConfigError: not a list of tables, an unknown or invalid key, or one folder twice.
    """
    hint = (
        N_("write one [[ledger.sftp]] table (two brackets) per place, with host, user, key_file, "
           "known_hosts and remote_dir")
    )
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError(N_("{path}: ledger.sftp must be a list of tables").format(path=path),
                          hint=hint)
    if not raw:
        return ()
    from gateway.config.routes import parse_sftp  # here: most gateways have no SFTP place

    endpoints: list[SftpEndpoint] = []
    for index, body in enumerate(raw):
        where = f"ledger.sftp[{index}]"
        try:
            endpoint = parse_sftp(body, where, resolve)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}",
                              hint=exc.hint) from None
        if any(e.url() == endpoint.url() for e in endpoints):
            raise ConfigError(
                N_("{path}: {where} names {url} a second time").format(
                    path=path, where=where, url=endpoint.url()),
                hint=N_("list each remote folder once"),
            )
        endpoints.append(endpoint)
    return tuple(endpoints)


def _recipient(pid: str, body: Any, resolve: Any, path: Path) -> Recipient:
    """One [recipients.PARTY] table; refuses a password route equal to the delivery route."""
    # Here: `approve`, which reads only where the daemon's folders are, loads no route.
    from gateway.config.routes import (
        MAIL_KEYS,
        SFTP_KEYS,
        check_separate,
        parse_mail,
        parse_password_route,
        parse_sftp,
    )

    route_keys = {"local": frozenset({"inbox"}), "sftp": SFTP_KEYS, "mail": MAIL_KEYS}
    where = f"recipients.{pid}"
    if not isinstance(body, dict):
        raise ConfigError(N_("{path}: [{where}] must be a table").format(path=path, where=where))
    transport = body.get("transport", "local")
    if transport not in TRANSPORTS:
        raise ConfigError(
            N_("{path}: {where}.transport {transport} is not supported").format(
                path=path, where=where, transport=repr(transport)),
            hint=N_("use one of: {choices}").format(choices=', '.join(TRANSPORTS)),
        )

    def lexical(value: Any, key: str) -> Path:
        # Absolute and normalised, but links are not resolved: delivery refuses a path that
        # passes through one, so a link planted later cannot redirect a file or a password.
        resolve(value, key)  # the same checks and messages as every other path
        return Path(os.path.normpath(path.parent / value))

    try:
        only(body, RECIPIENT_KEYS | route_keys[str(transport)], where)
        inbox = sftp = mail = None
        if transport == "local":
            inbox = lexical(body.get("inbox"), f"{where}.inbox")
        elif transport == "sftp":
            sftp = parse_sftp(body, where, lexical, extra=RECIPIENT_KEYS)
        else:
            mail = parse_mail(body, where, lexical)
        raw_channel = body.get("password_channel")
        route = (
            parse_password_route(raw_channel, f"{where}.password_channel", lexical)
            if raw_channel is not None
            else None
        )
        if route is not None:
            check_separate(inbox, sftp, route, where)
        attempts = body.get("attempts", 5)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 100:
            raise ConfigError(N_("{where}.attempts must be a whole number from 1 to 100").format(
                                  where=where))
        manifest = body.get("manifest", True)
        if not isinstance(manifest, bool):
            raise ConfigError(N_("{where}.manifest must be true or false").format(where=where))
        receipts = parse_receipts(body, where, lexical)
    except ConfigError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ConfigError(f"{path}: {exc}", hint=exc.hint) from None
    return Recipient(
        party=pid,
        transport=str(transport),
        inbox=inbox,
        sftp=sftp,
        mail=mail,
        password_route=route,
        attempts=attempts,
        manifest=manifest,
        **receipts,
    )


def _inbound(body: Mapping[str, Any], resolve: Any, path: Path) -> Inbound:
    """The [inbound] table; refuses a password folder that is the inbox (or inside it)."""

    def folder(key: str) -> Path | None:
        value = body.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise ConfigError(N_("{path}: inbound.{key} must be a path").format(path=path,
                                                                                key=key),
                              hint=N_('set {key} = "…"').format(key=key))
        # Lexical, like a recipient's folders: a link planted later is refused where used.
        return Path(os.path.normpath(path.parent / value))

    known = {
        "inbox",
        "password_channel",
        "age_identity",
        "handlers_folder",
        "notify_command",
        "remind_days",
        "pickup",
        "receipts_dir",
    }
    only(body, known, f"{path}: inbound")
    inbox = folder("inbox")
    passwords = folder("password_channel")
    handlers = folder("handlers_folder")
    if inbox is None:
        if body:
            raise ConfigError(
                N_("{path}: [inbound] has no inbox").format(path=path),
                hint=N_('set inbox = "…", the folder files are delivered into'),
            )
        return Inbound()
    if passwords is not None and (passwords == inbox or inbox in passwords.parents):
        raise ConfigError(
            N_("{path}: inbound.password_channel is the inbox or inside it").format(path=path),
            hint=N_("the password must never travel with the file it opens: give it a folder of "
                    "its own"),
        )
    if handlers is not None and (handlers == inbox or inbox in handlers.parents):
        raise ConfigError(
            N_("{path}: inbound.handlers_folder is inside the inbox").format(path=path),
            hint=N_("opened data must never be where partners deliver"),
        )
    command = body.get("notify_command", [])
    if not isinstance(command, list) or not all(isinstance(c, str) and c for c in command):
        raise ConfigError(
            N_("{path}: inbound.notify_command must be a list of strings").format(path=path),
            hint=N_('e.g. notify_command = ["/usr/local/bin/tachiai-notify"]'),
        )
    days = body.get("remind_days", [14, 3, 0])
    if not isinstance(days, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 3650 for d in days
    ):
        raise ConfigError(
            N_("{path}: inbound.remind_days must be a list of whole days (0 = on the "
               "deadline)").format(path=path),
            hint=N_("e.g. remind_days = [14, 3, 0]"),
        )
    pickups = body.get("pickup", {})
    if not isinstance(pickups, dict) or not all(isinstance(t, dict) for t in pickups.values()):
        raise ConfigError(
            N_("{path}: inbound.pickup must hold tables [inbound.pickup.NAME]").format(path=path),
            hint=N_("one table per provider's SFTP server"),
        )
    from gateway.config.sources import check_password_accounts, parse_inbound_pickup

    sources = {
        name: parse_inbound_pickup(name, t, resolve, path, passwords) for name, t in pickups.items()
    }
    check_password_accounts(list(sources.values()), path)
    return Inbound(
        inbox=inbox,
        password_channel=passwords,
        age_identity=folder("age_identity"),
        handlers_folder=handlers or inbox.parent / "handlers",
        notify_command=tuple(command),
        remind_days=tuple(sorted(set(days), reverse=True)),
        pickups=sources,
        receipts_dir=folder("receipts_dir") or inbox.parent / "receipts",
    )

