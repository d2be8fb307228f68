"""SFTP sources the daemon polls (取得), as configured: `[pickup.NAME]` (a sender's outbox,
files to send on) and `[inbound.pickup.NAME]` (a provider's folder, deliveries to receive), and
the table rules they share. Valid when built; a password account is never a files account.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.routes import (
    SFTP_KEYS,
    PasswordRoute,
    SftpEndpoint,
    check_separate,
    parse_sftp,
)
from gateway.config.schema import only
from gateway.errors import ConfigError
from gateway.i18n import N_

__all__ = [
    "SFTP_KEYS",
    "InboundPickupSource",
    "PickupSource",
    "after_rule",
    "check_password_accounts",
    "only",
    "parse_inbound_pickup",
    "parse_pickup",
]

PICKUP_AFTER = ("delete", "rename")


@dataclass(frozen=True)
class PickupSource:
    """A partner's (or a sender's) SFTP outbox that the daemon polls for files to send on.

    Files pulled from it are attributed to `handler`, the designated sender (送信担当) named
    here, because a pulled file belongs to the daemon's own OS user.
    """

    name: str
    agreement: str
    flow: str
    handler: str
    sftp: SftpEndpoint
    after: str = "delete"  # or "rename": move the remote file into `done_dir`
    done_dir: str | None = None
    interval_seconds: float = 60.0


@dataclass(frozen=True)
class InboundPickupSource:
    """A provider's SFTP folder this gateway fetches deliveries from (`[inbound.pickup.NAME]`).

    Sealed files and their manifests (送付票) come from `sftp`; a ZIP's password, when it comes
    by SFTP, from `password_sftp`, never the same account (the password never travels with its
    file). Both land in the `[inbound]` folders; passwords are always deleted remotely.
    """

    name: str
    sftp: SftpEndpoint
    password_sftp: SftpEndpoint | None = None
    after: str = "delete"  # or "rename": move the fetched files into `done_dir`
    done_dir: str | None = None
    interval_seconds: float = 60.0


PICKUP_KEYS = frozenset({"after", "done_dir", "interval_seconds"})
SENDER_PICKUP_KEYS = PICKUP_KEYS | {"agreement", "flow", "handler"}


def parse_inbound_pickup(
    name: str, body: dict[str, Any], resolve: Any, path: Path, passwords: Path | None
) -> InboundPickupSource:
    """One [inbound.pickup.NAME] table, and its optional password_channel table."""
    where = f"inbound.pickup.{name}"
    try:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name) or ".." in name:
            raise ConfigError(
                N_("[{where}]: the name must be letters, digits, '.', '_' or '-'").format(
                    where=where),
                hint=N_("it names the source's folders under gateway.state_dir"),
            )
        only(body, SFTP_KEYS | PICKUP_KEYS | {"password_channel"}, where)
        after, done_dir, interval = after_rule(body, where)
        sftp = parse_sftp(body, where, resolve, extra=PICKUP_KEYS | {"password_channel"})
        channel = body.get("password_channel")
        password_sftp = None
        if channel is not None:
            pw_where = f"{where}.password_channel"
            if not isinstance(channel, dict) or channel.get("kind", "sftp") != "sftp":
                raise ConfigError(
                    N_("{pw_where} must be a table of an SFTP account").format(pw_where=pw_where),
                    hint=N_("[{pw_where}] with host, user, key_file, known_hosts and remote_dir "
                            "of the password account").format(pw_where=pw_where),
                )
            if passwords is None:
                raise ConfigError(
                    N_("{pw_where} needs inbound.password_channel").format(pw_where=pw_where),
                    hint=N_('set password_channel = "…" in [inbound]: the local folder fetched '
                            "passwords are put in"),
                )
            password_sftp = parse_sftp(channel, pw_where, resolve, extra={"kind"})
            check_separate(None, sftp, PasswordRoute("sftp", sftp=password_sftp), where)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}", hint=exc.hint) from None
    return InboundPickupSource(
        name=name,
        sftp=sftp,
        password_sftp=password_sftp,
        after=after,
        done_dir=done_dir,
        interval_seconds=interval,
    )


def check_password_accounts(sources: Collection[InboundPickupSource], path: Path) -> None:
    """No source's password account may be any source's file account (PPAP, across sources)."""
    files = {s.sftp.account: s.name for s in sources}
    for source in sources:
        if source.password_sftp is not None and source.password_sftp.account in files:
            ep = source.password_sftp
            raise ConfigError(
                N_("{path}: inbound.pickup.{name}.password_channel is the SFTP account "
                   "({user}@{host}:{port}) files are fetched from by inbound.pickup.{files}: the "
                   "same place").format(
                    path=path, name=source.name, user=ep.user, host=ep.host, port=ep.port,
                    files=files[ep.account]),
                hint=N_("use another account or another host for password_channel"),
            )


def after_rule(body: Mapping[str, Any], where: str) -> tuple[str, str | None, float]:
    """after, done_dir (only for "rename") and interval_seconds of a pickup table.

    Raises:
        ConfigError: an unknown `after`, a relative `done_dir`, a non-positive interval.
    """
    after = body.get("after", "delete")
    done_dir = body.get("done_dir")
    if after not in PICKUP_AFTER:
        raise ConfigError(N_("{where}.after must be one of {choices}").format(
                              where=where, choices=', '.join(PICKUP_AFTER)))
    if after == "rename" and (not isinstance(done_dir, str) or not done_dir.startswith("/")):
        raise ConfigError(
            N_("{where}.done_dir must be an absolute folder on the server").format(where=where),
            hint=N_('e.g. done_dir = "/outbox/done"'),
        )
    interval = body.get("interval_seconds", 60.0)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise ConfigError(N_("{where}.interval_seconds must be a positive number").format(
                              where=where))
    return str(after), done_dir if after == "rename" else None, float(interval)


def parse_pickup(name: str, body: Any, resolve: Any, path: Path) -> PickupSource:
    """One [pickup.NAME] table: an SFTP outbox, the flow it feeds and the sender it stands for."""
    where = f"pickup.{name}"
    if not isinstance(body, dict):
        raise ConfigError(N_("{path}: [{where}] must be a table").format(path=path, where=where))
    try:
        only(body, SFTP_KEYS | SENDER_PICKUP_KEYS, where)
        for key in ("agreement", "flow", "handler"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise ConfigError(
                    N_("{where}.{key} is missing").format(where=where, key=key),
                    hint=N_("name the agreement, the flow, and the designated sender (送信担当) "
                            "the pulled files are attributed to"),
                )
        after, done_dir, interval = after_rule(body, where)
        sftp = parse_sftp(body, where, resolve, extra=SENDER_PICKUP_KEYS)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}", hint=exc.hint) from None
    return PickupSource(
        name=name,
        agreement=body["agreement"],
        flow=body["flow"],
        handler=body["handler"],
        sftp=sftp,
        after=after,
        done_dir=done_dir,
        interval_seconds=interval,
    )
